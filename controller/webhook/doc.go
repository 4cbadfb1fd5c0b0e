// Package webhook is the controller's validating admission webhook for the metallb.io
// configuration, and the self-managed certificate it is served with.
//
// Data flow:
//
//	kubectl apply ──> API server ──AdmissionReview──> Validator (every replica)
//	                                                    ├─ lists the configuration namespace (cache)
//	                                                    ├─ replaces the admitted object's namesake
//	                                                    └─ config.Compile ──> Error.For(kind, name)
//	                                                         ├─ missing references: allowed, with warnings
//	                                                         └─ anything else: denied, naming the field and the fix
//
//	CertManager (every replica) ──> Secret ironlb-webhook-cert (CA + serving cert, created or rotated)
//	                              ├─> tls.crt / tls.key in the server's CertDir (its cert watcher reloads them)
//	                              └─> caBundle of the ValidatingWebhookConfiguration
//
// The checks here are the ones that need other objects (overlapping pools, localPref conflicts,
// duplicate alias names across Community objects, deleting a BFDProfile in use) plus what the
// CRD's CEL cannot express (IPv6 range order); config.Compile is the single source of all of
// them, so the webhook and the controllers never disagree.
package webhook
