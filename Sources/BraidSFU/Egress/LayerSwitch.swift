/// Which simulcast layer a subscriber slot forwards, and the switch to another one.
///
/// Video moves to the target layer only on one of its keyframes (the subscriber's decoder could not use
/// anything else); until then the current layer keeps flowing. Audio takes the first layer it sees.
struct LayerSwitch {
    /// Layer being forwarded (nil: none yet; video waits for a keyframe).
    private(set) var current: Int?
    /// Layer wanted; forwarding moves to it on its next keyframe.
    var target = 0
    /// Switches made (the first start not counted).
    private(set) var switches = 0

    /// The layers the slot needs delivered: the current one and the target.
    var layers: LayerSet {
        var set = LayerSet.layer(self.target)
        if let current = self.current { set.formUnion(.layer(current)) }
        return set
    }

    /// Forgets the current layer (a new track): the next keyframe of the target starts it.
    mutating func reset(target: Int) {
        self.current = nil
        self.target = target
    }

    /// Whether a packet of `layer` is forwarded; moves to the target on its keyframe.
    mutating func admit(layer: Int, isKeyframe: Bool, isVideo: Bool) -> Bool {
        if layer == self.current { return true }
        if isVideo {
            guard layer == self.target, isKeyframe else { return false }
            if self.current != nil { self.switches += 1 }
            self.current = layer
            return true
        }
        guard self.current == nil else { return false }
        self.current = layer
        return true
    }
}
