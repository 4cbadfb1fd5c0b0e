package bfd

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParsePacket feeds arbitrary UDP payloads to parsePacket. Properties: it never panics; it
// fails only with errMalformed or errAuthentication; whatever it accepts re-encodes to the
// payload's first 24 bytes with the Length field normalised to 24 (nothing else is dropped or
// changed), and that encoding parses back to the same packet. The seed corpus is f.Add below
// plus testdata/fuzz/FuzzParsePacket/, which `go test` runs; `make fuzz` explores further.
func FuzzParsePacket(f *testing.F) {
	up := mustHex(f, frrUp)
	f.Add(up)
	f.Add(withByte(withByte(up, 1, 0x40), 8, 0)) // Down, Your Discriminator still set
	f.Add(withByte(up, 1, 0xc0|flagPoll))        // Poll
	f.Add(withByte(up, 1, 0xc0|flagFinal))       // Final
	f.Add(append(withByte(withByte(up, 1, 0xc0|flagAuth), 3, 26), 1, 2))
	f.Add(withByte(up, 3, 23))
	f.Add(withByte(up, 2, 0))
	f.Add(up[:23])
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePacket(b)
		if err != nil {
			if !errors.Is(err, errMalformed) && !errors.Is(err, errAuthentication) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		enc := p.appendTo(nil)
		want := bytes.Clone(b[:packetLen])
		want[3] = packetLen
		if !bytes.Equal(enc, want) {
			t.Fatalf("encode(decode(%x)) = %x, want %x", b, enc, want)
		}
		again, err := parsePacket(enc)
		if err != nil || again != p {
			t.Fatalf("decode(encode(p)) = %+v, %v; want %+v", again, err, p)
		}
	})
}
