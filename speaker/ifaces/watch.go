package ifaces

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Watch calls notify after the kernel reports a change to any link or address of the current
// network namespace (rtnetlink's link and address multicast groups): an interface going down
// or up, appearing, or gaining an address. The messages are not parsed — the listing is cheap
// and callers re-read it — so notify may be called for changes that do not matter. notify must
// not block. Watch returns nil when ctx ends, or an error if the socket fails.
//
// Without it, an interface coming back would be answered on only at the next periodic resync.
func Watch(ctx context.Context, notify func()) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open rtnetlink socket: %w", err)
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return fmt.Errorf("subscribe to link and address changes: %w", err)
	}
	// A read timeout lets the loop notice ctx ending without closing the socket under a
	// blocked read.
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return fmt.Errorf("set rtnetlink read timeout: %w", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		switch {
		case err == nil && n > 0:
			notify()
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ENOBUFS):
			notify() // messages were dropped: something changed
		case err != nil:
			return fmt.Errorf("read rtnetlink: %w", err)
		}
	}
	return nil
}
