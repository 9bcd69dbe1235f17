import Foundation
import Logging

/// The value of the leader key: who holds the leadership.
struct LeaderRecord: Codable, Hashable {
    var id: String
}

/// Turning keys into records and watch events into ``ClusterEvent``s. A subscriber keeps a
/// ``ClusterSnapshot`` as its model and applies each change to it: the model tells a new node from a
/// changed one, and gives the origin of a track whose key was deleted.
extension ClusterSnapshot {
    /// The state held in `range` (every key under the prefix).
    init(_ range: EtcdRange, keys: ClusterKeys, logger: Logger) {
        self.init(revision: range.revision)
        for kv in range.kvs {
            _ = self.apply(.put(kv, previous: nil), keys: keys, logger: logger)
        }
    }

    /// Applies one change and returns what it means (nothing for keys outside the layout, or records
    /// that do not decode, which are logged and skipped: one bad writer must not stop the others).
    mutating func apply(_ event: EtcdWatchEvent, keys: ClusterKeys, logger: Logger) -> [ClusterEvent] {
        guard let entry = keys.parse(event.key) else { return [] }
        let decoder = JSONDecoder()
        do {
            switch (entry, event) {
            case (.node(let id), .put(let kv, _)):
                let record = try decoder.decode(NodeRecord.self, from: kv.value)
                let known = self.nodes.updateValue(record, forKey: id) != nil
                return [known ? .nodeChanged(record) : .nodeUp(record)]
            case (.node(let id), .delete):
                return self.nodes.removeValue(forKey: id) == nil ? [] : [.nodeDown(id)]
            case (.links(let from), .put(let kv, _)):
                let links = try decoder.decode([LinkRecord].self, from: kv.value)
                self.links[from] = links
                return [.linksChanged(from: from, links: links)]
            case (.links(let from), .delete):
                return self.links.removeValue(forKey: from) == nil ? [] : [.linksChanged(from: from, links: [])]
            case (.track(let key), .put(let kv, _)):
                let record = try decoder.decode(TrackRecord.self, from: kv.value)
                self.tracks[key] = record
                return [.trackPublished(record)]
            case (.track(let key), .delete):
                guard let old = self.tracks.removeValue(forKey: key) else { return [] }
                return [.trackWithdrawn(room: key.room, id: key.id, origin: old.origin)]
            case (.function(let key), .put(let kv, _)):
                let record = try decoder.decode(FunctionRecord.self, from: kv.value)
                self.functions[key] = record
                return [.functionPlaced(record)]
            case (.function(let key), .delete):
                guard let old = self.functions.removeValue(forKey: key) else { return [] }
                return [.functionRemoved(room: key.room, id: key.id, node: old.node)]
            case (.leader, .put(let kv, _)):
                let record = try decoder.decode(LeaderRecord.self, from: kv.value)
                guard let id = NodeIDText.parse(record.id) else {
                    throw EtcdError.decoding(what: "leader", reason: "bad id \(record.id)")
                }
                guard self.leader != id else { return [] }
                self.leader = id
                return [.leaderChanged(id)]
            case (.leader, .delete):
                guard self.leader != nil else { return [] }
                self.leader = nil
                return [.leaderChanged(nil)]
            }
        } catch {
            logger.warning("skipping undecodable cluster key \(event.key): \(error)")
            return []
        }
    }

    /// The events that turn `self` into `new` (after a resync, when the changes in between are unknown).
    func changes(to new: ClusterSnapshot) -> [ClusterEvent] {
        var events: [ClusterEvent] = []
        for (id, record) in new.nodes.sorted(by: { $0.key < $1.key }) where self.nodes[id] != record {
            events.append(self.nodes[id] == nil ? .nodeUp(record) : .nodeChanged(record))
        }
        for (from, links) in new.links.sorted(by: { $0.key < $1.key }) where self.links[from] != links {
            events.append(.linksChanged(from: from, links: links))
        }
        for (from, _) in self.links.sorted(by: { $0.key < $1.key }) where new.links[from] == nil {
            events.append(.linksChanged(from: from, links: []))
        }
        for (key, record) in new.tracks.sorted(by: { $0.key < $1.key }) where self.tracks[key] != record {
            events.append(.trackPublished(record))
        }
        for (key, record) in self.tracks.sorted(by: { $0.key < $1.key }) where new.tracks[key] == nil {
            events.append(.trackWithdrawn(room: key.room, id: key.id, origin: record.origin))
        }
        for (key, record) in new.functions.sorted(by: { $0.key < $1.key }) where self.functions[key] != record {
            events.append(.functionPlaced(record))
        }
        for (key, record) in self.functions.sorted(by: { $0.key < $1.key }) where new.functions[key] == nil {
            events.append(.functionRemoved(room: key.room, id: key.id, node: record.node))
        }
        for id in self.nodes.keys.sorted() where new.nodes[id] == nil {
            events.append(.nodeDown(id))
        }
        if self.leader != new.leader {
            events.append(.leaderChanged(new.leader))
        }
        return events
    }
}
