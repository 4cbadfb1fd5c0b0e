package config

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Community
		err  string // a fragment of the error; "": no error
	}{
		{"standard", "65000:100", Community{Kind: StandardCommunity, A: 65000, B: 100}, ""},
		{"standard at the limits", "65535:65535", Community{Kind: StandardCommunity, A: 65535, B: 65535}, ""},
		{"standard zero", "0:0", Community{Kind: StandardCommunity}, ""},
		{"large", "large:1:2:3", Community{Kind: LargeCommunity, A: 1, B: 2, C: 3}, ""},
		{"large at the limits", "large:4294967295:0:4294967295", Community{Kind: LargeCommunity, A: 4294967295, C: 4294967295}, ""},

		{"standard part too big", "65536:1", Community{}, "0 to 65535"},
		{"standard part negative", "-1:1", Community{}, "0 to 65535"},
		{"standard part not a number", "a:1", Community{}, "0 to 65535"},
		{"standard part empty", ":1", Community{}, "0 to 65535"},
		{"large part too big", "large:4294967296:1:1", Community{}, "0 to 4294967295"},
		{"large of two parts", "large:1:2", Community{}, "large:65000:1:2"},
		{"three parts", "1:2:3", Community{}, "must be a standard community such as 65000:100"},
		{"four parts without marker", "x:1:2:3", Community{}, "must be a standard community"},
		{"no colon", "65000", Community{}, "must be a standard community"},
		{"empty", "", Community{}, "must be a standard community"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCommunity(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseCommunity(%q) = %v, %v; want an error saying %q", tc.in, got, err, tc.err)
				}
				if !strings.Contains(err.Error(), `"`+tc.in+`"`) {
					t.Errorf("error %q does not quote the input", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseCommunity(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
			if got.String() != tc.in {
				t.Errorf("String() = %q, want %q", got.String(), tc.in)
			}
		})
	}
}

func TestCommunityValueAndOrder(t *testing.T) {
	c, _ := ParseCommunity("65000:100")
	if got, want := c.Value(), uint32(65000<<16|100); got != want {
		t.Errorf("Value() = %d, want %d", got, want)
	}
	var list []Community
	for _, s := range []string{"large:1:2:3", "65000:100", "large:1:1:9", "1:2", "65000:99"} {
		v, err := ParseCommunity(s)
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, v)
	}
	slices.SortFunc(list, Community.Compare)
	var got []string
	for _, v := range list {
		got = append(got, v.String())
	}
	want := []string{"1:2", "65000:99", "65000:100", "large:1:1:9", "large:1:2:3"}
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %v, want %v (standard first, then by value)", got, want)
	}
	if StandardCommunity.String() != "standard" || LargeCommunity.String() != "large" || CommunityKind(9).String() != "CommunityKind(9)" {
		t.Errorf("CommunityKind.String is wrong")
	}
}
