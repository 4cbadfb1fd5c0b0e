// Package allocation is the controller's Kubernetes glue around the pure allocator
// (internal/allocator) and configuration compiler (internal/config).
//
// Data flow:
//
//	metallb.io objects ──> ConfigReconciler ──compile──> State.SetConfig ──SetPools──> allocator
//	                                          └──> ConfigurationState "controller" (Valid/Invalid)
//	Services, Namespaces ──> ServiceReconciler ──Request()──> allocator.Allocate
//	                                          ├──> status.loadBalancer.ingress (one status patch)
//	                                          ├──> metallb.io/ip-allocated-from-pool (one metadata patch)
//	                                          └──> Events (Normal on assignment, Warning with the fix)
//	allocation changes ──> PoolStatusReconciler ──> IPAddressPool status + pool metrics
//
// IPs never move: before any Service is reconciled, Initializer compiles the configuration and
// adopts every assignment already written in Services' status (also a previous MetalLB
// install's), oldest Service first, and only then opens the gate and queues every Service.
package allocation
