#!/usr/bin/python3
"""A WHEP client built on GStreamer's webrtcbin, for the ersmesh tests.

GStreamer's own WHEP element (whepsrc) is in gst-plugins-rs, which Debian 12
does not package; webrtcbin (gst-plugins-bad) is, so this script does the few
HTTP steps of WHEP itself and leaves all of WebRTC (ICE with libnice, DTLS,
SRTP, RTP) to GStreamer: an independent stack from pion and from Chromium.

Usage: whep_gst.py ENDPOINT FRAMES [TOKEN]
POSTs a complete (non-trickling) offer to ENDPOINT, applies the answer,
decodes H.264 until FRAMES frames came out of the decoder, DELETEs the
session and prints "frames N". Exits 1 with a reason on stderr otherwise.
"""
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

TIMEOUT_S = 25


def main():
    endpoint, want = sys.argv[1], int(sys.argv[2])
    token = sys.argv[3] if len(sys.argv) > 3 else ""
    Gst.init(None)
    loop = GLib.MainLoop()
    state = {"frames": 0, "session": None, "error": None, "posted": False}

    def fail(msg):
        if state["error"] is None:
            state["error"] = msg
        loop.quit()

    pipe = Gst.Pipeline.new("whep")
    wb = Gst.ElementFactory.make("webrtcbin", "wb")
    wb.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
    pipe.add(wb)
    caps = Gst.Caps.from_string(
        "application/x-rtp,media=video,encoding-name=H264,payload=102,clock-rate=90000,"
        "packetization-mode=(string)1,profile-level-id=(string)42e01f")
    wb.emit("add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY, caps)

    def on_frame(*_):
        state["frames"] += 1
        if state["frames"] == want:
            GLib.idle_add(loop.quit)

    def on_pad(_, pad):
        if pad.direction != Gst.PadDirection.SRC:
            return
        dec = Gst.parse_bin_from_description(
            "rtph264depay ! h264parse ! openh264dec ! fakesink name=sink signal-handoffs=true sync=false", True)
        pipe.add(dec)
        dec.sync_state_with_parent()
        pad.link(dec.get_static_pad("sink"))
        dec.get_by_name("sink").connect("handoff", on_frame)

    def post():
        if state["posted"]:
            return False
        state["posted"] = True
        sdp = wb.get_property("local-description").sdp.as_text()
        req = urllib.request.Request(endpoint, data=sdp.encode(), method="POST",
                                     headers={"Content-Type": "application/sdp"})
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:
                if resp.status != 201:
                    fail("POST: status %d" % resp.status)
                    return False
                state["session"] = urllib.parse.urljoin(endpoint, resp.headers["Location"])
                answer = resp.read().decode()
        except urllib.error.HTTPError as e:
            fail("POST: %d %s" % (e.code, e.read().decode().strip()))
            return False
        except OSError as e:
            fail("POST: %s" % e)
            return False
        res, msg = GstSdp.SDPMessage.new_from_text(answer)
        if res != GstSdp.SDPResult.OK:
            fail("the answer is not SDP")
            return False
        desc = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, msg)
        wb.emit("set-remote-description", desc, Gst.Promise.new())
        return False

    def on_gathering(*_):
        if wb.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(post)

    def on_offer(promise, *_):
        reply = promise.get_reply()
        offer = reply.get_value("offer") if reply else None
        if offer is None:
            fail("create-offer: %s" % (reply.to_string() if reply else "no reply"))
            return
        wb.emit("set-local-description", offer, Gst.Promise.new())
        # Do not wait forever for gathering: what is there by then will do.
        GLib.timeout_add_seconds(3, post)

    def on_negotiation_needed(*_):
        wb.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer, None))

    def on_bus(_, message):
        if message.type == Gst.MessageType.ERROR:
            err, dbg = message.parse_error()
            fail("GStreamer: %s (%s)" % (err.message, dbg))

    wb.connect("on-negotiation-needed", on_negotiation_needed)
    wb.connect("notify::ice-gathering-state", on_gathering)
    wb.connect("pad-added", on_pad)
    bus = pipe.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_bus)
    GLib.timeout_add_seconds(TIMEOUT_S, lambda: fail("only %d frames within %d s" % (state["frames"], TIMEOUT_S)))

    pipe.set_state(Gst.State.PLAYING)
    loop.run()
    pipe.set_state(Gst.State.NULL)

    if state["session"]:
        try:
            urllib.request.urlopen(urllib.request.Request(state["session"], method="DELETE"), timeout=10).close()
        except OSError as e:
            print("DELETE failed: %s" % e, file=sys.stderr)
    if state["error"] or state["frames"] < want:
        print(state["error"] or "too few frames", file=sys.stderr)
        sys.exit(1)
    print("frames %d" % state["frames"])


if __name__ == "__main__":
    main()
