import BraidICE
import BraidSFU
import BraidWire
import NIOCore

/// A datagram one shard hands to the shard that owns its session.
struct ForwardedDatagram: Sendable {
    var data: ByteBuffer
    var kind: DatagramKind
    var source: SocketAddress
}

/// The store's part in a node with several media shards (one per event loop):
/// - datagrams of sessions held by another shard are handed to it in batches (see
///   ``WebRTCShardDirectory``: the owner is found once per remote address);
/// - the forwarding routers of every two shards are joined by a ``RouterLink``, so a room spans the
///   shards: each shard mirrors the others' tracks and pulls them only while its own subscribers watch.
extension WebRTCSessionStore {
    /// Most remote addresses remembered as another shard's.
    static let maximumRemoteOwners = 16_384

    /// Joins this shard to the others (called on this store's loop once every shard is bound).
    func join(shards: [WebRTCShard], index: Int, directory: WebRTCShardDirectory) {
        self.shardIndex = index
        self.shards = shards
        self.directory = directory
        for shard in shards where shard.index != index { _ = self.link(to: shard.index) }
        // Messages another shard sent before this one knew its peers.
        let early = self.earlyLinkMessages
        self.earlyLinkMessages.removeAll()
        for (message, from) in early { self.receive(message, fromShard: from) }
        self.output.flush()
    }

    /// The link to shard `index`, made on first use (by either side).
    func link(to index: Int) -> RouterLink? {
        if let link = self.links[index] { return link }
        guard let target = self.shards.first(where: { $0.index == index }) else { return nil }
        let from = self.shardIndex
        let link = self.forwarding.link(name: "loop-\(index)") { message in
            target.eventLoop.execute {
                target.store.value.receive(message, fromShard: from)
            }
        }
        self.links[index] = link
        return link
    }

    /// A message from another shard's router.
    func receive(_ message: RouterLinkMessage, fromShard index: Int) {
        guard !self.isClosed else { return }
        guard let link = self.link(to: index) else {
            if self.shards.isEmpty { self.earlyLinkMessages.append((message, index)) }
            return
        }
        link.receive(message, now: .now())
        self.forwarding.flushLinks()
        self.output.flush()
    }

    /// The shard that owns the session of a datagram that matched no session here: by the remembered
    /// remote address, or for a STUN request by its USERNAME's ufrag (remembered for the address).
    func ownerShard(of datagram: ByteBuffer, kind: DatagramKind, from source: SocketAddress) -> Int? {
        guard self.shards.count > 1, let address = STUNAddress(transport: source) else { return nil }
        if let owner = self.remoteOwners[address] { return owner.shard }
        guard kind == .stun, let directory = self.directory, let message = try? STUNMessage(parsing: datagram),
            let ufrag = Table.localUfragKey(of: message), let shard = directory.shard(ufrag: ufrag),
            shard != self.shardIndex
        else { return nil }
        // Bounded: a peer that knows a ufrag could otherwise grow it from endless source ports. Forgotten
        // entries are learnt again from the next STUN check.
        if self.remoteOwners.count >= Self.maximumRemoteOwners { self.remoteOwners.removeAll(keepingCapacity: true) }
        self.remoteOwners[address] = RemoteOwner(shard: shard, ufrag: ufrag)
        return shard
    }

    /// Queues a datagram for its owner shard (sent at the end of the read batch). The receive buffer is
    /// copied: it belongs to this loop's socket.
    func handOff(_ datagram: ByteBuffer, kind: DatagramKind, from source: SocketAddress, to shard: Int) {
        var copy = self.channel.allocator.buffer(capacity: datagram.readableBytes)
        copy.writeImmutableBuffer(datagram)
        self.handOffs[shard, default: []].append(ForwardedDatagram(data: copy, kind: kind, source: source))
    }

    /// Sends the queued hand-offs and the links' batches (once per read batch and per tick).
    func flushShards() {
        self.forwarding.flushLinks()
        guard !self.handOffs.isEmpty else { return }
        let batches = self.handOffs
        self.handOffs.removeAll(keepingCapacity: true)
        for (index, datagrams) in batches {
            guard let target = self.shards.first(where: { $0.index == index }) else { continue }
            target.eventLoop.execute {
                target.store.value.receiveHandOff(datagrams)
            }
        }
    }

    /// Datagrams another shard received for sessions held here.
    func receiveHandOff(_ datagrams: [ForwardedDatagram]) {
        guard !self.isClosed else { return }
        for datagram in datagrams {
            self.handedOffIn &+= 1
            _ = self.route(datagram.data, kind: datagram.kind, from: datagram.source, handedOff: true)
        }
        self.flush()
    }

    /// What this loop holds and passes on, for the dashboard.
    var eventLoopStatus: WebRTCEventLoopStatus {
        var status = WebRTCEventLoopStatus(index: self.shardIndex, sessions: self.count, handedOffIn: self.handedOffIn)
        for link in self.links.values {
            status.relayedOut &+= UInt64(link.counters.packetsSent)
            status.relayedIn &+= UInt64(link.counters.packetsReceived)
            status.mirroredTracks += link.mirroredTracks.count
        }
        return status
    }

    /// Forgets remote addresses whose session has ended (from the consent sweep).
    func sweepRemoteOwners() {
        guard let directory = self.directory, !self.remoteOwners.isEmpty else { return }
        self.remoteOwners = self.remoteOwners.filter { directory.shard(ufrag: $0.value.ufrag) == $0.value.shard }
    }
}

/// Where a remote address's session lives, and the ufrag that told us (to notice when it ends).
struct RemoteOwner {
    var shard: Int
    var ufrag: ICEUfragKey
}
