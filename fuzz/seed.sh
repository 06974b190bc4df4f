#!/usr/bin/env bash
# Builds each target's seed corpus in fuzz/corpus/<target>/ from the
# repository's own files: the RFC 4475 torture messages and recorded peer
# messages (tests/fixtures/sip), the SDP of src/sdp/tests.rs, the feeds in
# tests/fixtures/feeds, the data.json files of config/ and the schedule
# tests. Re-running rewrites the seeds and keeps whatever runs added.
set -euo pipefail
cd "$(dirname "$0")"
repo=..
corpus=corpus

# One byte, given as a number.
byte() { printf "\\x$(printf %02x "$1")"; }
# A 16-bit big-endian length, then the file.
chunk() {
  local len
  len=$(wc -c <"$1")
  byte $((len >> 8 & 255))
  byte $((len & 255))
  head -c 65535 "$1"
}
# Rust string constants `const NAME: &str = "…";` of a file, one per file in
# $2, unescaped (\r \n \" and the backslash-newline continuation).
rust_strings() {
  awk -v out="$2" '
    /^const [A-Z0-9_]+: &str = "/ {
      name = $2; sub(":", "", name); text = $0; sub(/^[^"]*"/, "", text); inside = 1; cont = 0
      file = out "/" tolower(name); printf "" > file
    }
    inside && !/^const / { text = $0; if (cont) sub(/^[ \t]+/, "", text) }
    inside {
      done = (text ~ /";$/)
      if (done) sub(/";$/, "", text)
      cont = (text ~ /\\$/)
      if (cont) sub(/\\$/, "", text)
      gsub(/\\r/, "\r", text); gsub(/\\n/, "\n", text); gsub(/\\"/, "\"", text)
      printf "%s%s", text, (cont || done ? "" : "\n") >> file
      if (done) { inside = 0; close(file) }
    }' "$1"
}

targets=(sip_datagram sip_stream endpoint sdp rtp schedule feed resume_book)
for target in "${targets[@]}"; do mkdir -p "$corpus/$target"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# SIP: every torture and recorded message.
mapfile -t sip < <(find "$repo/tests/fixtures/sip" -type f \( -name '*.dat' -o -name '*.sip' \) | sort)
for f in "${sip[@]}"; do
  name=$(basename "$(dirname "$f")")-$(basename "$f")
  cp "$f" "$corpus/sip_datagram/seed-$name"
  # Server and client role, whole; and cut into 7-byte chunks.
  { byte 0; byte 0; cat "$f"; } >"$corpus/sip_stream/seed-server-$name"
  { byte 1; byte 0; cat "$f"; } >"$corpus/sip_stream/seed-client-$name"
  { byte 0; split -b 7 --filter='printf "\\007"; cat' "$f"; } >"$corpus/sip_stream/seed-cut-$name" 2>/dev/null \
    || { byte 0; byte 0; cat "$f"; } >"$corpus/sip_stream/seed-cut-$name"
  # The endpoint: a trusted source sends it raw over UDP, then time passes.
  { byte 2; byte 4; byte 0; byte 0; chunk "$f"; byte 5; byte 5; } >"$corpus/endpoint/seed-raw-$name"
done
# Keep-alives between two messages on one connection (RFC 5626 §4.4.1).
invite=$repo/tests/fixtures/sip/baresip-invite.sip
{ byte 0; byte 0; printf '\r\n\r\n'; cat "$invite"; printf '\r\n'; cat "$invite"; } \
  >"$corpus/sip_stream/seed-keepalives"

# The endpoint's scripts (see fuzz_targets/endpoint.rs): a flags byte, then
# steps. 0 = template (slot, kind, [source, tcp,] [offer|body], edits),
# 5 = jump to the next timer, 8 = answer the endpoint's last request.
invite_step() { byte 0; byte "$1"; byte 0; byte "$2"; byte "$3"; byte "$4"; byte 0; }
ack_step() { byte 0; byte "$1"; byte 1; byte 0; }
bye_step() { byte 0; byte "$1"; byte 2; byte 0; byte 0; }
{ byte 2; invite_step 0 0 0 0; byte 5; ack_step 0; byte 5; bye_step 0; byte 5; } >"$corpus/endpoint/seed-call"
{ byte 0; invite_step 0 0 1 0; byte 5; byte 5; ack_step 0; byte 5; bye_step 0; } >"$corpus/endpoint/seed-ringing-tcp"
{ byte 0; invite_step 1 2 0 1; byte 0; byte 1; byte 3; byte 0; byte 5; ack_step 1; } >"$corpus/endpoint/seed-cancel"
{ byte 2; invite_step 0 0 0 7; byte 5; ack_step 0; byte 0; byte 0; byte 4; byte 0; byte 0; byte 9; byte 0; byte 5; } \
  >"$corpus/endpoint/seed-delayed-offer"
{ byte 2; invite_step 0 0 0 2; ack_step 0; byte 10; invite_step 1 0 0 0; ack_step 1; } >"$corpus/endpoint/seed-rejected"
{ byte 2; invite_step 0 0 0 0; ack_step 0; byte 0; byte 0; byte 6; byte 5; byte 0; byte 5; ack_step 0; byte 0; byte 0; byte 4; byte 1; byte 0; } \
  >"$corpus/endpoint/seed-reinvite-info"
{ byte 5; byte 8; byte 2; byte 0; byte 0; byte 8; byte 0; byte 1; byte 0; byte 5; byte 8; byte 5; byte 0; byte 0; } \
  >"$corpus/endpoint/seed-register-challenge"
{ byte 0x45; byte 8; byte 3; byte 0; byte 0; byte 5; invite_step 0 1 0 0; invite_step 1 0 0 0; } \
  >"$corpus/endpoint/seed-register-tcp-untrusted"

# SDP: the real peers' offers of src/sdp/tests.rs, and those in the INVITEs,
# for each choice of the line's codecs.
mkdir -p "$tmp/sdp"
rust_strings "$repo/src/sdp/tests.rs" "$tmp/sdp"
for f in "$invite" "$repo/tests/fixtures/sip/linphone-invite-ipv6.sip" "$repo/tests/fixtures/sip/kamailio-invite-record-route.sip"; do
  sed -n '/^\r\{0,1\}$/,$p' "$f" | tail -n +2 >"$tmp/sdp/$(basename "$f" .sip)"
done
for f in "$tmp"/sdp/*; do
  [ -s "$f" ] || continue
  for choice in 0 7 130; do
    { byte "$choice"; cat "$f"; } >"$corpus/sdp/seed-$choice-$(basename "$f")"
  done
done

# RTP: a PCMU packet, a key press in RFC 4733 (start, update, end three
# times), and RTCP as our sender writes it (SR, SDES, BYE).
rtp_header() { printf '\x80'; byte "$1"; printf '\x00\x01\x00\x00\x03\x20\xde\xad\xbe\xef'; }
{ rtp_header 0; head -c 160 /dev/zero | tr '\0' '\377'; } >"$tmp/pcmu"
{ rtp_header 101; printf '\x05\x0a\x00\xa0'; } >"$tmp/event"
{ rtp_header 101; printf '\x05\x8a\x03\x20'; } >"$tmp/event-end"
{ printf '\x80\xc8\x00\x06\xde\xad\xbe\xef'; head -c 20 /dev/zero
  printf '\x81\xca\x00\x04\xde\xad\xbe\xef\x01\x07line@x\x00'
  printf '\x81\xcb\x00\x01\xde\xad\xbe\xef'; } >"$tmp/rtcp"
{ chunk "$tmp/pcmu"; chunk "$tmp/event"; chunk "$tmp/event"; chunk "$tmp/event-end"
  chunk "$tmp/event-end"; chunk "$tmp/event-end"; chunk "$tmp/rtcp"; } >"$corpus/rtp/seed-call"
for f in pcmu event rtcp; do chunk "$tmp/$f" >"$corpus/rtp/seed-$f"; done

# Schedules: the line's example, the format's description and the tests'.
{ byte 0; cat "$repo/config/data.json"; } >"$corpus/schedule/seed-config"
awk '/^```json/{on=1; next} /^```/{on=0} on' "$repo/../shared/seed/data-json-format.md" 2>/dev/null \
  >"$tmp/format.json" || true
[ -s "$tmp/format.json" ] && { byte 1; cat "$tmp/format.json"; } >"$corpus/schedule/seed-format"
# Raw strings r#"…"# of the schedule tests, one seed each.
awk -v out="$tmp/schedule-" '
  /r#"/ { on = 1; n++; text = $0; sub(/.*r#"/, "", text) }
  on && !/r#"/ { text = $0 }
  on {
    done = (text ~ /"#/)
    if (done) sub(/"#.*/, "", text)
    print text >> (out n)
    if (done) { on = 0; close(out n) }
  }' "$repo/src/source/schedule/tests.rs"
for f in "$tmp"/schedule-*; do
  { byte 2; cat "$f"; } >"$corpus/schedule/seed-test-$(basename "$f")"
done

# Feeds: every fixture, with and without the feed's URL.
for f in "$repo"/tests/fixtures/feeds/*; do
  { byte 0; cat "$f"; } >"$corpus/feed/seed-$(basename "$f")"
  { byte 16; cat "$f"; } >"$corpus/feed/seed-base-$(basename "$f")"
done

# The resume book: one caller, as the line writes it, and an empty book.
mkdir -p "$corpus/resume_book"
printf '{"0123456789abcdef0123456789abcdef":{"file":"evensong.mp3","date":"2026-11-29T18:00:00Z","position_s":1400.0,"at":"2026-12-01T10:00:00Z"}}' >"$corpus/resume_book/seed-one"
printf '{}' >"$corpus/resume_book/seed-empty"

for target in "${targets[@]}"; do
  echo "$target: $(find "$corpus/$target" -name 'seed-*' | wc -l) seeds" >&2
done
