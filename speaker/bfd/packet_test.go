package bfd

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// frrUp is a Control packet as FRR's bfdd sends it once Up with the default profile: version
// 1, diag 0, state Up, multiplier 3, My Discriminator 0x5c6d9c3f, Your Discriminator
// 0x11111111, 300 ms, 300 ms, Required Min Echo RX 50 ms.
const frrUp = "20c00318" + "5c6d9c3f" + "11111111" + "000493e0" + "000493e0" + "0000c350"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withByte returns a copy of b with b[i] = v.
func withByte(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}

func TestParsePacket(t *testing.T) {
	up := mustHex(t, frrUp)
	want := packet{
		State: Up, DetectMult: 3, MyDiscriminator: 0x5c6d9c3f, YourDiscriminator: 0x11111111,
		DesiredMinTxInterval: 300 * ms, RequiredMinRxInterval: 300 * ms, RequiredMinEchoRxInterval: 50 * ms,
	}
	got, err := parsePacket(up)
	if err != nil || got != want {
		t.Fatalf("parse FRR's Up packet: %+v, %v; want %+v", got, err, want)
	}
	if enc := got.appendTo(nil); !bytes.Equal(enc, up) {
		t.Fatalf("encode: %x, want %s", enc, frrUp)
	}

	downNoYour := withByte(withByte(withByte(withByte(withByte(up, 1, 0x40), 8, 0), 9, 0), 10, 0), 11, 0)
	tests := []struct {
		name     string
		b        []byte
		wantErr  error  // nil: accepted
		wantText string // part of the error message
	}{
		{"FRR Up packet", up, nil, ""},
		{"Down without Your Discriminator", downNoYour, nil, ""},
		{"AdminDown without Your Discriminator", withByte(downNoYour, 1, 0x00), nil, ""},
		{"trailing bytes past Length ignored", append(bytes.Clone(up), 1, 2, 3), nil, ""},
		{"Length above 24 without authentication accepted", append(withByte(up, 3, 28), 0, 0, 0, 0), nil, ""},
		{"all flags but A and M", withByte(up, 1, 0xc0|flagPoll|flagFinal|flagCPI|flagDemand), nil, ""},
		{"reserved diagnostic kept", withByte(up, 0, 0x20|31), nil, ""},
		{"empty", nil, errMalformed, "0 bytes"},
		{"23 bytes", up[:23], errMalformed, "23 bytes"},
		{"version 0", withByte(up, 0, 0x00), errMalformed, "version 0"},
		{"version 2", withByte(up, 0, 0x40), errMalformed, "version 2"},
		{"Length below 24", withByte(up, 3, 23), errMalformed, "length field 23"},
		{"Length beyond the payload", withByte(up, 3, 25), errMalformed, "exceeds"},
		{"A bit with Length below 26", withByte(withByte(up, 1, 0xc0|flagAuth), 3, 24), errMalformed, "want at least 26"},
		{"Detect Mult 0", withByte(up, 2, 0), errMalformed, "detect multiplier 0"},
		{"Multipoint", withByte(up, 1, 0xc0|flagMultipoint), errMalformed, "multipoint"},
		{"My Discriminator 0", withByte(withByte(withByte(withByte(up, 4, 0), 5, 0), 6, 0), 7, 0), errMalformed, "my discriminator 0"},
		{"Init without Your Discriminator", withByte(downNoYour, 1, 0x80), errMalformed, "your discriminator 0 in state Init"},
		{"Up without Your Discriminator", withByte(downNoYour, 1, 0xc0), errMalformed, "your discriminator 0 in state Up"},
		{"authentication present", append(withByte(withByte(up, 1, 0xc0|flagAuth), 3, 26), 1, 2), errAuthentication, "A bit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parsePacket(tc.b)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantText) {
				t.Fatalf("error %v, want %v containing %q", err, tc.wantErr, tc.wantText)
			}
		})
	}
}

func TestIntervalsSaturate(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want uint32
	}{
		{"zero", 0, 0},
		{"negative", -time.Second, 0},
		{"sub-microsecond truncated", 1500 * time.Nanosecond, 1},
		{"300 ms", 300 * ms, 300000},
		{"beyond 32 bits", 2 * time.Hour, 1<<32 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := toMicros(tc.d); got != tc.want {
				t.Fatalf("toMicros(%v) = %d, want %d", tc.d, got, tc.want)
			}
		})
	}
}

func TestStateAndDiagStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{AdminDown.String(), "AdminDown"}, {Down.String(), "Down"}, {Init.String(), "Init"}, {Up.String(), "Up"},
		{State(4).String(), "State(4)"},
		{DiagNone.String(), "None"}, {DiagControlDetectionTimeExpired.String(), "ControlDetectionTimeExpired"},
		{DiagReverseConcatenatedPathDown.String(), "ReverseConcatenatedPathDown"}, {Diag(9).String(), "Diag(9)"},
		{Diag(9).metricValue(), "Reserved"}, {Up.metricValue(), "up"}, {AdminDown.metricValue(), "admin_down"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
