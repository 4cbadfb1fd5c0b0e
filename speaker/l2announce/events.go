package l2announce

// AnnouncingFormat is the note of the Announcing Event: the VIPs (comma-separated), the node and
// its interfaces (comma-separated). `kubectl ironlb status` (internal/lbstatus) reads the node
// back from it to show the last failover, so change both together.
const AnnouncingFormat = "announcing %s from %s on %s"
