// Command etcd is the etcd server, built from the pinned go.etcd.io/etcd/server/v3 module.
// etcd's own main package lives in a module that cannot be required, so this is the same
// two lines it holds.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
