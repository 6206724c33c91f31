#!/usr/bin/env bash
# Regenerates the built-in sample clip that `ersmesh device` and `ersmesh demo`
# stream when no camera is given: ffmpeg's public "testsrc2" test pattern and a
# sine tone, 4 seconds, as two elementary streams:
#   - sample.h264: H.264 Annex-B, 640x360, 30 fps (120 frames), a keyframe
#     every second, so a viewer who joins mid-clip waits at most a second for
#     a picture; Constrained Baseline level 3.1, no B-frames: what every
#     WebRTC browser decodes and what pion's default H.264 entries announce;
#     an access unit delimiter before every frame, so frames split cleanly.
#   - sample.aac: AAC-LC in ADTS, mono, 32 kHz, 48 kbit/s. At 32 kHz an AAC
#     frame (1024 samples) lasts 32 ms, so 125 frames are exactly 4 s and the
#     audio loops in step with the video (the package keeps the first 125).
# The clip loops seamlessly because it starts with an IDR frame.
#
# Needs ffmpeg (Debian package `ffmpeg`). Usage: scripts/make-sample.sh
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/node/media/sample"
mkdir -p "$dir"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=30:duration=4" \
  -c:v libx264 -profile:v baseline -level 3.1 -pix_fmt yuv420p \
  -preset veryfast -tune zerolatency -bf 0 \
  -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 500k -maxrate 600k -bufsize 600k \
  -x264-params "aud=1:repeat-headers=1" \
  -f h264 "$dir/sample.h264"
# A 440 Hz tone that beeps once a second (volume gated by the second's first
# 200 ms), so a listener hears the loop and the sync.
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "sine=frequency=440:sample_rate=32000:duration=4.2" \
  -af "volume='if(lt(mod(t,1),0.2),0.5,0.05)':eval=frame" \
  -c:a aac -b:a 48k -ac 1 -ar 32000 \
  -f adts "$dir/sample.aac"
echo "wrote $dir/sample.h264 ($(stat -c %s "$dir/sample.h264") bytes), $dir/sample.aac ($(stat -c %s "$dir/sample.aac") bytes)"
