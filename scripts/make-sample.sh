#!/usr/bin/env bash
# Regenerates the built-in sample clip that `ersmesh device` and `ersmesh demo`
# stream when no camera is given. It is ffmpeg's public "testsrc2" test
# pattern, encoded as H.264 Annex-B:
#   - 640x360, 30 fps, 4 seconds (120 frames), a keyframe every second, so a
#     viewer who joins mid-clip waits at most a second for a picture;
#   - Constrained Baseline profile, level 3.1, no B-frames: what every WebRTC
#     browser decodes and what pion's default H.264 codec entries announce;
#   - an access unit delimiter before every frame, so frames split cleanly.
# The clip loops seamlessly because it starts with an IDR frame.
#
# Needs ffmpeg (Debian package `ffmpeg`). Usage: scripts/make-sample.sh
set -euo pipefail
out="$(cd "$(dirname "$0")/.." && pwd)/node/media/sample/sample.h264"
mkdir -p "$(dirname "$out")"
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=30:duration=4" \
  -c:v libx264 -profile:v baseline -level 3.1 -pix_fmt yuv420p \
  -preset veryfast -tune zerolatency -bf 0 \
  -g 30 -keyint_min 30 -sc_threshold 0 \
  -b:v 500k -maxrate 600k -bufsize 600k \
  -x264-params "aud=1:repeat-headers=1" \
  -f h264 "$out"
echo "wrote $out ($(stat -c %s "$out") bytes)"
