import DequeModule
import Foundation

/// Each node's finished images and UNet steps in fixed time buckets over the last minutes, for
/// the status page's chart; and the nodes that left within that window, so that a worker
/// killed a minute ago shows as gone rather than vanishing.
struct ThroughputHistory {
    static let bucketSeconds = 10
    /// Ten minutes of buckets.
    static let bucketCount = 60

    struct Bucket {
        /// Seconds since 1970 divided by `bucketSeconds`.
        var index: Int
        var images = 0
        var steps = 0
    }

    struct Departure {
        var host: String
        var at: Date
        var reason: String
    }

    private var buckets: [String: Deque<Bucket>] = [:]
    private(set) var departures: [String: Departure] = [:]

    static func bucketIndex(_ time: Date) -> Int { Int((time.timeIntervalSince1970 / Double(bucketSeconds)).rounded(.down)) }

    mutating func record(node: String, images: Int = 0, steps: Int = 0, at time: Date) {
        let index = Self.bucketIndex(time)
        var series = buckets[node] ?? []
        if series.last?.index != index { series.append(Bucket(index: index)) }
        series[series.count - 1].images += images
        series[series.count - 1].steps += steps
        while let first = series.first, first.index <= index - Self.bucketCount { series.removeFirst() }
        buckets[node] = series
    }

    mutating func joined(node: String) { departures[node] = nil }

    mutating func left(node: String, host: String, reason: String, at time: Date) {
        departures[node] = Departure(host: host, at: time, reason: reason)
    }

    /// Forgets what is older than the window.
    mutating func prune(now: Date) {
        let oldest = Self.bucketIndex(now) - Self.bucketCount
        for (node, series) in buckets where (series.last?.index ?? oldest) <= oldest { buckets[node] = nil }
        let window = TimeInterval(Self.bucketSeconds * Self.bucketCount)
        departures = departures.filter { now.timeIntervalSince($0.value.at) < window }
    }

    /// Images per minute and steps per second in each of the last `bucketCount` complete
    /// buckets before `now`, oldest first (the bucket in progress would read low).
    func rates(node: String, now: Date) -> (imagesPerMinute: [Double], stepsPerSecond: [Double]) {
        let end = Self.bucketIndex(now)
        var images = [Double](repeating: 0, count: Self.bucketCount)
        var steps = [Double](repeating: 0, count: Self.bucketCount)
        for bucket in buckets[node] ?? [] {
            let slot = bucket.index - (end - Self.bucketCount)
            guard (0..<Self.bucketCount).contains(slot) else { continue }
            images[slot] = Double(bucket.images) * 60 / Double(Self.bucketSeconds)
            steps[slot] = Double(bucket.steps) / Double(Self.bucketSeconds)
        }
        return (images, steps)
    }
}
