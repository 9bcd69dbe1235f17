import NIOCore

/// In-place rewriting of same-length fields, as an SFU does per consumer.
///
/// Each setter writes into ``RTPPacket/buffer`` at offsets validated when the packet was parsed; the
/// layout never changes, so the view stays valid. None of them allocates while the storage is uniquely
/// referenced: copy the packet into a per-consumer buffer, move that buffer into a view, rewrite, and
/// take the buffer back:
///
/// ```swift
/// scratch.clear()                                   // capacity kept from the previous packet
/// scratch.writeImmutableBuffer(received.bytes)
/// var out = try RTPPacket(consume scratch)          // `consume` keeps the storage uniquely referenced
/// out.setSSRC(consumerSSRC)
/// try out.setTransportSequenceNumber(nextTransportSequence, map)
/// scratch = out.buffer
/// ```
extension RTPPacket {
    /// Sets the M bit.
    @inlinable public mutating func setMarker(_ marker: Bool) {
        let second = self.byte(1)
        self.storage.setInteger(marker ? second | 0x80 : second & 0x7F, at: self.base + 1)
    }

    /// Sets the payload type.
    /// - Throws: `.badValue` if `payloadType` exceeds 127.
    @inlinable public mutating func setPayloadType(_ payloadType: UInt8) throws(WireError) {
        guard payloadType <= 127 else {
            throw WireError(.badValue, "payload type \(payloadType) exceeds 127")
        }
        self.storage.setInteger(self.byte(1) & 0x80 | payloadType, at: self.base + 1)
    }

    /// Sets the sequence number.
    @inlinable public mutating func setSequenceNumber(_ sequenceNumber: UInt16) {
        self.storage.setInteger(sequenceNumber, at: self.base + 2)
    }

    /// Sets the timestamp.
    @inlinable public mutating func setTimestamp(_ timestamp: UInt32) {
        self.storage.setInteger(timestamp, at: self.base + 4)
    }

    /// Sets the SSRC.
    @inlinable public mutating func setSSRC(_ ssrc: UInt32) {
        self.storage.setInteger(ssrc, at: self.base + 8)
    }

    /// Overwrites the value of extension element `id` with `bytes` of the same length.
    /// - Throws: `.badExtension` if the packet has no element `id`; `.badLength` if the lengths differ.
    @inlinable
    public mutating func setExtensionValue(id: UInt8, bytes: some Collection<UInt8>) throws(WireError) {
        let offset = try self.extensionValueOffset(id: id, length: bytes.count)
        self.storage.setBytes(bytes, at: self.base + offset)
    }

    /// Overwrites extension element `id` with a typed value of the same encoded length.
    /// - Throws: `.badExtension` if the packet has no element `id`; `.badLength` if the lengths differ.
    @inlinable
    public mutating func setExtension(_ value: some RTPHeaderExtensionValue, id: UInt8) throws(WireError) {
        let offset = try self.extensionValueOffset(id: id, length: value.encodedLength)
        value.write(to: &self.storage, at: self.base + offset)
    }

    /// Overwrites the transport-wide sequence number (the SFU numbers every packet per transport).
    /// - Throws: `.badExtension` if not negotiated in `map` or absent from the packet.
    @inlinable
    public mutating func setTransportSequenceNumber(
        _ number: UInt16, _ map: RTPHeaderExtensionMap
    ) throws(WireError) {
        guard let id = map.transportSequenceNumber else {
            throw WireError(.badExtension, "transport-wide sequence number not negotiated")
        }
        try self.setExtension(TransportSequenceNumber(number), id: id)
    }

    /// Overwrites abs-send-time.
    /// - Throws: `.badExtension` if not negotiated in `map` or absent from the packet.
    @inlinable
    public mutating func setAbsSendTime(_ time: AbsSendTime, _ map: RTPHeaderExtensionMap) throws(WireError) {
        guard let id = map.absSendTime else {
            throw WireError(.badExtension, "abs-send-time not negotiated")
        }
        try self.setExtension(time, id: id)
    }

    @inlinable
    func extensionValueOffset(id: UInt8, length: Int) throws(WireError) -> Int {
        guard let element = self.extension(id: id) else {
            throw WireError(.badExtension, "packet has no extension element with ID \(id)")
        }
        guard element.length == length else {
            throw WireError(
                .badLength, "extension ID \(id) holds \(element.length) bytes, new value has \(length)")
        }
        return element.valueOffset
    }
}
