package node

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/ersmesh/ersmesh/trust"
)

// checkAnswer checks a viewer's answer to our offer before pion sees it.
//
// pion takes the DTLS fingerprint from the session level, else from the
// bundled media section, else from the first section that has one; a check
// of any single line can be walked around by an answer that puts the
// proven fingerprint where we look and another certificate where pion
// looks (a reordered BUNDLE group, an extra media section). So: the answer
// has exactly the offer's media sections, in order, and when the viewer
// proved the room secret for a fingerprint, every fingerprint line of the
// answer, at every level, is that one.
func checkAnswer(offer, answer, proven string) error {
	if len(answer) > trust.MaxSDP {
		return fmt.Errorf("answer of %d bytes (limit %d)", len(answer), trust.MaxSDP)
	}
	var o, a sdp.SessionDescription
	if err := o.UnmarshalString(offer); err != nil {
		return fmt.Errorf("our own offer does not parse: %w", err)
	}
	if err := a.UnmarshalString(answer); err != nil {
		return fmt.Errorf("answer does not parse: %w", err)
	}
	if len(a.MediaDescriptions) != len(o.MediaDescriptions) {
		return fmt.Errorf("the answer has %d media sections, the offer %d", len(a.MediaDescriptions), len(o.MediaDescriptions))
	}
	for i, am := range a.MediaDescriptions {
		om := o.MediaDescriptions[i]
		if am.MediaName.Media != om.MediaName.Media {
			return fmt.Errorf("media section %d is %q in the answer, %q in the offer", i, am.MediaName.Media, om.MediaName.Media)
		}
		omid, _ := om.Attribute("mid")
		if amid, ok := am.Attribute("mid"); ok && amid != omid {
			return fmt.Errorf("media section %d has mid %q in the answer, %q in the offer", i, amid, omid)
		}
	}
	if proven == "" {
		return nil
	}
	n := 0
	check := func(attrs []sdp.Attribute) error {
		for _, at := range attrs {
			if !strings.EqualFold(at.Key, "fingerprint") {
				continue
			}
			n++
			if trust.NormalizeFingerprint(at.Value) != proven {
				return fmt.Errorf("the answer carries DTLS fingerprint %q, not the one the room secret was proven for", at.Value)
			}
		}
		return nil
	}
	if err := check(a.Attributes); err != nil {
		return err
	}
	for _, am := range a.MediaDescriptions {
		if err := check(am.Attributes); err != nil {
			return err
		}
	}
	if n == 0 {
		return fmt.Errorf("the answer carries no DTLS fingerprint")
	}
	return nil
}
