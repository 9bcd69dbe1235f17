import Testing

@testable import BraidLoad

@Suite("Scenario plans")
struct PlanTests {
    @Test("A conference plans each participant's publisher then its linked subscriber, on one node")
    func conferenceLinksEachSubscriberToItsPublisher() {
        let configuration = LoadConfiguration(
            scenario: .conference(rooms: 2, participants: 3), nodes: ["http://a:1", "http://b:2"], roomPrefix: "p")
        let plans = LoadRunner.plan(configuration)
        #expect(plans.count == 12)
        for (index, plan) in plans.enumerated() where plan.role == .subscriber {
            // The subscriber names the publisher planned just before it: same participant, room and node.
            let publisher = index - 1
            #expect(plan.linkedPublisher == publisher)
            #expect(plans[publisher].role == .publisher && plans[publisher].linkedPublisher == nil)
            #expect(plans[publisher].participant == plan.participant)
            #expect(plans[publisher].room == plan.room && plans[publisher].node == plan.node)
            #expect(plan.audioTracks == 2 && plan.videoTracks == 2)
        }
        let participants = ["p-0/0", "p-0/1", "p-0/2", "p-1/0", "p-1/1", "p-1/2"].flatMap { [$0, $0] }
        #expect(plans.compactMap(\.participant) == participants)
        // Participants alternate between the nodes.
        let nodes = Array(repeating: ["http://a:1", "http://a:1", "http://b:2", "http://b:2"], count: 3)
        #expect(plans.map(\.node) == nodes.flatMap { $0 })
        // Other scenarios are not linked.
        let webinar = LoadRunner.plan(LoadConfiguration(scenario: .webinar(subscribers: 2)))
        #expect(webinar.allSatisfy { $0.linkedPublisher == nil && $0.participant == nil })
    }
}
