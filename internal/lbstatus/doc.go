// Package lbstatus builds the view `kubectl ironlb status` prints: for each LoadBalancer
// Service its IPs, pool, mode, the nodes announcing it (layer 2: node and interfaces; BGP: nodes
// and peers), since when, and the last failover.
//
// Data flow: Read lists Services, the ServiceL2Status and ServiceBGPStatus objects, the
// speakers' Announcing Events and the pools with their advertisements into a Snapshot; Build, a
// pure function of the Snapshot and the time, turns it into Entries; WriteTable, WriteDetail and
// JSON render them.
//
// Where the times come from, since nothing records them explicitly: "since" is the
// creationTimestamp of the announcing node's status object — a speaker creates it when it starts
// announcing a Service, keeps it across its own restarts, and the object of the previous node
// goes away at a failover. "Last failover" is the latest change of announcing node, read from
// the speakers' Announcing Events ("announcing 192.168.50.50 from node2 on eth0") together with
// that creationTimestamp; the API server keeps Events for one hour by default, so an older
// failover is reported as none recorded.
package lbstatus
