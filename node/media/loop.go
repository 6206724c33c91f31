package media

import (
	"context"
	"errors"
	"time"
)

// LoopSource plays frames held in memory in a loop, paced in real time: the
// built-in clip and files. Timestamps keep counting across loops, so to a
// viewer the loop is one continuous stream.
type LoopSource struct {
	Name          string
	Video         []AccessUnit // must start with a keyframe
	FrameDuration time.Duration
	Audio         []AudioFrame // Samples set; PTS ignored
	AudioFormat   *AudioFormat // nil without audio
}

func (l *LoopSource) String() string { return l.Name }

// Run implements Source.
func (l *LoopSource) Run(ctx context.Context, w Writer) error {
	if len(l.Video) == 0 || l.FrameDuration <= 0 {
		return errors.New("no video frames to loop")
	}
	audio := l.Audio
	if l.AudioFormat == nil || l.AudioFormat.SampleRate <= 0 {
		audio = nil
	} else {
		w.SetAudio(*l.AudioFormat)
	}
	// Pace against an absolute schedule so that jitter in one tick does not
	// accumulate into drift.
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nv, na int
	var audioSamples int64
	for {
		tv := time.Duration(nv) * l.FrameDuration
		ta := time.Duration(1<<62 - 1)
		if len(audio) > 0 {
			rate := int64(l.AudioFormat.SampleRate)
			ta = time.Duration(audioSamples/rate)*time.Second + time.Duration(audioSamples%rate)*time.Second/time.Duration(rate)
		}
		next := min(tv, ta)
		if wait := time.Until(start.Add(next)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-timer.C:
			}
		} else if wait < -2*time.Second {
			// We were stalled (a suspended machine): move the schedule
			// rather than bursting the missed frames.
			start = start.Add(-wait)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if ta < tv {
			a := audio[na%len(audio)]
			a.PTS = ta
			w.WriteAudio(a)
			audioSamples += int64(a.Samples)
			na++
			continue
		}
		w.WriteVideo(VideoFrame{AU: l.Video[nv%len(l.Video)], PTS: tv, Duration: l.FrameDuration})
		nv++
	}
}
