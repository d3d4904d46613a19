import DequeModule
import Foundation

/// Each node's finished images in fixed time buckets over the last minutes, for the status
/// page's chart; and the nodes that left within that window, so that a worker killed a minute
/// ago shows as gone rather than vanishing.
struct ThroughputHistory {
    static let bucketSeconds = 10
    /// Ten minutes of complete buckets (the one in progress is kept too, but not charted).
    static let bucketCount = 60

    struct Bucket {
        /// Seconds since 1970 divided by `bucketSeconds`.
        var index: Int
        var images = 0
    }

    struct Departure {
        var host: String
        var at: Date
        var reason: String
    }

    private var buckets: [String: Deque<Bucket>] = [:]
    private(set) var departures: [String: Departure] = [:]

    static func bucketIndex(_ time: Date) -> Int { Int((time.timeIntervalSince1970 / Double(bucketSeconds)).rounded(.down)) }

    /// The oldest bucket index still charted at `index`'s bucket.
    private static func oldest(at index: Int) -> Int { index - bucketCount }

    mutating func record(node: String, images: Int, at time: Date) {
        let index = Self.bucketIndex(time)
        buckets[node, default: []].appendOrAdd(index: index, images: images)
        while let first = buckets[node]?.first, first.index < Self.oldest(at: index) { buckets[node]?.removeFirst() }
    }

    mutating func joined(node: String) { departures[node] = nil }

    mutating func left(node: String, host: String, reason: String, at time: Date) {
        departures[node] = Departure(host: host, at: time, reason: reason)
    }

    /// Forgets what has left the window (called every second, so that the nodes of a long-lived
    /// coordinator do not pile up whether or not anyone looks at the page).
    mutating func prune(now: Date) {
        let oldest = Self.oldest(at: Self.bucketIndex(now))
        for (node, series) in buckets where (series.last?.index ?? oldest - 1) < oldest { buckets[node] = nil }
        let window = TimeInterval(Self.bucketSeconds * Self.bucketCount)
        departures = departures.filter { now.timeIntervalSince($0.value.at) < window }
    }

    /// Images per minute in each of the last `bucketCount` complete buckets before `now`,
    /// oldest first (the bucket in progress would read low).
    func imagesPerMinute(node: String, now: Date) -> [Double] {
        let oldest = Self.oldest(at: Self.bucketIndex(now))
        var rates = [Double](repeating: 0, count: Self.bucketCount)
        for bucket in buckets[node] ?? [] where (oldest..<(oldest + Self.bucketCount)).contains(bucket.index) {
            rates[bucket.index - oldest] = Double(bucket.images) * 60 / Double(Self.bucketSeconds)
        }
        return rates
    }
}

private extension Deque<ThroughputHistory.Bucket> {
    /// Adds to the last bucket when it is `index`'s, else starts that bucket.
    mutating func appendOrAdd(index: Int, images: Int) {
        if let last = indices.last, self[last].index == index {
            self[last].images += images
        } else {
            append(ThroughputHistory.Bucket(index: index, images: images))
        }
    }
}
