#!/bin/sh
# Regenerates the default prompt library, audio/prompts/<name>.opus: the words
# and phrases every spoken sentence of the line is joined from (see
# audio/README.md for the list and how a parish records its own).
# Needs espeak-ng, sox and ffmpeg (with libopus). Run from anywhere:
#   sh audio/make-prompts.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/prompts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The same calm British voice as make-audio.sh: 140 words a minute.
voice=en-gb
rate=140

# prompt NAME "text": speak, trim, normalise, encode.
#
# A trailing comma in the text gives the word espeak's rising "more to come"
# intonation, for words that never end a sentence; a full stop, the falling
# end. The line joins prompts with its own short pauses, so each clip is cut
# tight: silence below -45 dB is trimmed from both ends and 5 ms fades keep
# the cut edges from clicking (the line fades again on load, for recordings).
# Ogg Opus, mono, 20 kbit/s: speech stays clear at phone bandwidth and the
# whole set is ~100 KB; any format symphonia reads works as well.
prompt() {
    espeak-ng -v "$voice" -s "$rate" -w "$work/raw.wav" "$2"
    sox "$work/raw.wav" -r 16000 -c 1 -b 16 "$work/trim.wav" \
        silence 1 0.01 -45d reverse silence 1 0.01 -45d fade t 0.005 \
        reverse fade t 0.005 norm -3
    rm -f "$out/$1".*
    ffmpeg -loglevel error -y -i "$work/trim.wav" \
        -codec:a libopus -b:a 20k -application voip -ac 1 \
        -map_metadata -1 -fflags +bitexact "$out/$1.opus"
}

prompt thanks-for-calling "Thanks for calling,"
prompt stay-on-the-line "To hear the latest service, just stay on the line."
prompt press "Press,"
prompt press-lower "press,"
prompt for-the-service-from "for the service from,"
prompt for "For,"
prompt the "the,"
prompt of "of,"
prompt star-returns "While a service is playing, press star to come back to this menu."
prompt not-an-option "Sorry, that's not one of the options."
prompt goodbye "Thank you for listening. Goodbye."
prompt cannot-play-here-is "We can't play that service just now, so here is the service from,"
prompt welcome-back "Welcome back."
prompt to-carry-on-with "To carry on with,"
prompt the-service-from "the service from,"
prompt from-where-you-stopped-about "from where you stopped, about,"
prompt minute-in "minute in,"
prompt minutes-in "minutes in,"
prompt hour-in "hour in,"
prompt hours-in "hours in,"
prompt or-stay-for-the-menu "Or stay on the line for the menu."

# Numbers of minutes: one to nineteen, and the tens (23 is "twenty" "three").
for n in $(seq 1 19) 20 30 40 50 60 70 80 90; do
    prompt "number-$n" "$n,"
done

for d in 0 1 2 3 4 5 6 7 8 9; do
    prompt "digit-$d" "$d"
done

for day in Monday Tuesday Wednesday Thursday Friday Saturday Sunday; do
    prompt "$(echo "$day" | tr 'A-Z' 'a-z')" "$day,"
done

for n in $(seq 1 31); do
    case "$((n % 100))" in
    11 | 12 | 13) suffix=th ;;
    *) case "$((n % 10))" in
        1) suffix=st ;;
        2) suffix=nd ;;
        3) suffix=rd ;;
        *) suffix=th ;;
        esac ;;
    esac
    prompt "$n$suffix" "$n$suffix,"
done

for month in January February March April May June July August September \
    October November December; do
    prompt "$(echo "$month" | tr 'A-Z' 'a-z')" "$month."
done

ls "$out" | wc -l | awk '{ printf "%d prompts, ", $1 }'
du -sh "$out" | awk '{ print $1 }'
