// Package ifaces decides which network interfaces of a node the layer-2 speaker answers ARP
// and NDP on.
//
// Data flow:
//
//	System("/sys").Links()           every link of the speaker's network namespace
//	  -> Eligible(links, prefixes)   drop down, NOARP, bond-member and excluded-name links
//	  -> Restrict(eligible, names)   per L2Advertisement: spec.interfaces, empty = all
//	  -> speaker/l2 Responders       one Responder per remaining link
//
// The rule is MetalLB's: a link that is down, has IFF_NOARP, is enslaved to a bond, or whose
// name starts with an excluded prefix (DefaultExcludedPrefixes) is never answered on. Bond
// members are skipped because the bond itself answers for them; a reply written straight to a
// member would bypass the bond's own choice of port (in active-backup mode, out of the backup
// link). L2Advertisement.spec.interfaces only
// narrows the eligible set; naming an ineligible interface there does not make it eligible.
//
// Check, Eligible and Restrict are pure and table-tested. System reads net.Interfaces and
// sysfs; both are injected in tests, which build a fake sysfs tree in a temporary directory,
// so no test needs root or a particular host.
package ifaces
