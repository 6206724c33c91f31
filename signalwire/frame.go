package signalwire

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge is returned for a message longer than MaxMessageSize.
var ErrTooLarge = errors.New("signalling message too large")

// WriteMessage writes m as one length-delimited frame.
func WriteMessage(w io.Writer, m *Message) error {
	body, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode signalling message: %w", err)
	}
	if len(body) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(body))
	}
	buf := make([]byte, 0, binary.MaxVarintLen64+len(body))
	buf = binary.AppendUvarint(buf, uint64(len(body)))
	buf = append(buf, body...)
	_, err = w.Write(buf)
	return err
}

// ReadMessage reads one frame and validates it. The length is checked before
// anything is allocated, so a peer cannot make us buffer more than
// MaxMessageSize.
func ReadMessage(r *bufio.Reader) (*Message, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read signalling frame length: %w", err)
	}
	if n > MaxMessageSize {
		return nil, fmt.Errorf("%w: peer announced %d bytes", ErrTooLarge, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read signalling frame: %w", err)
	}
	return DecodeMessage(body)
}

// DecodeMessage parses and validates one frame body.
func DecodeMessage(body []byte) (*Message, error) {
	if len(body) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(body))
	}
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
