import Testing
import Wire

@Suite("a dataset job's progress as ptp submit and ptp status print it")
struct VariantProgressTests {
    @Test("variants in, kept, rejected by reason with each reason's share of those in (most first), failed")
    func summary() {
        let progress = VariantProgress(total: 1000, done: 400, failed: 2, kept: 38, rejected: ["ranked": 60, "clip_direction": 200, "clip_image": 90])
        #expect(progress.summary == "400/1000 variants in, 38 kept, 350 rejected (clip_direction 200 = 50%, clip_image 90 = 23%, ranked 60 = 15%), 2 failed")
        #expect(VariantProgress(total: 8, done: 0, failed: 0, kept: 0, rejected: [:]).summary == "0/8 variants in, 0 kept, 0 rejected")
    }
}
