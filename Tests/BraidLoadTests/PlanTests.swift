import ArgumentParser
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

    @Test("--publisher-node: publishers go there, subscribers alone take turns over --node; not for conferences")
    func publisherNode() throws {
        let options = try CommonLoadOptions.parse([
            "--publisher-node", "http://p:1", "--node", "http://a:2", "--node", "http://b:3",
        ])
        let configuration = try options.configuration(.webinar(subscribers: 3))
        #expect(configuration.publisherNode == "http://p:1")
        let plans = LoadRunner.plan(configuration)
        #expect(plans.map(\.role) == [.publisher, .subscriber, .subscriber, .subscriber])
        #expect(plans.map(\.node) == ["http://p:1", "http://a:2", "http://b:3", "http://a:2"])
        var audio = configuration
        audio.scenario = .audioRoom(publishers: 2, subscribers: 2)
        #expect(LoadRunner.plan(audio).map(\.node) == ["http://p:1", "http://p:1", "http://a:2", "http://b:3"])
        // Without --node, the subscribers join the publisher's node; without the option, nothing changes.
        let alone = try CommonLoadOptions.parse(["--publisher-node", "http://p:1"])
        #expect(try alone.configuration(.webinar(subscribers: 1)).nodes == ["http://p:1"])
        let plain = try CommonLoadOptions.parse(["--node", "http://a:2", "--node", "http://b:3"])
        #expect(
            LoadRunner.plan(try plain.configuration(.webinar(subscribers: 2))).map(\.node)
                == ["http://a:2", "http://b:3", "http://a:2"])
        #expect(throws: LoadArgumentError.self) {
            try options.configuration(.conference(rooms: 1, participants: 2))
        }
        #expect(throws: LoadArgumentError.self) {
            try CommonLoadOptions.parse(["--publisher-node", "not a url"]).configuration(.webinar(subscribers: 1))
        }
    }
}
