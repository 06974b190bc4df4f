#!/bin/sh
# Regenerates the line's shipped audio from text, so nothing here is a
# recording anyone has to own or license:
#   apology.wav         what a caller hears when the service cannot be played
#   sample-service.mp3  a ~50 s stand-in service for trying the line out
# Needs espeak-ng, sox (with libsox-fmt-mp3) and ffmpeg. Run from anywhere:
#   sh audio/make-audio.sh
set -eu

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A calm British voice: elderly callers asked for slower speech, and 140 words
# a minute (espeak's default is 175) is about a reader's pace in church.
voice=en-gb
rate=140

say() { # say OUT.wav "text"
    espeak-ng -v "$voice" -s "$rate" -w "$work/raw.wav" "$2"
    # espeak speaks at 22.05 kHz; the service is mastered at 44.1 kHz like
    # a parish's real MP3s, so the line's resampler is exercised as in use.
    sox "$work/raw.wav" -r 44100 -c 1 -b 16 "$1" norm -3
}

# A soft "organ": a sustained sine chord, faded in and out so it never clicks.
chord() { # chord OUT.wav SECONDS F1 F2 F3 F4
    # Four input channels (one note each), mixed down to one by `remix -`.
    sox -r 44100 -c 4 -n -c 1 -b 16 "$1" synth "$2" \
        sine "$3" sine "$4" sine "$5" sine "$6" \
        remix - fade q 1.5 "$2" 2 norm -12
}

silence() { # silence OUT.wav SECONDS
    sox -n -r 44100 -c 1 -b 16 "$1" trim 0 "$2"
}

# --- The apology clip -------------------------------------------------------
# Mono 16-bit 16 kHz: enough for the phone (8 kHz G.711, or Opus wideband)
# and small. A short lead-in keeps the first word from being clipped while
# the caller's phone switches the audio path on.
espeak-ng -v "$voice" -s "$rate" -w "$work/apology-raw.wav" \
    "We're very sorry, but the service line is having some technical difficulties at the moment. Please do try again later. Thank you for calling."
sox "$work/apology-raw.wav" -r 16000 -c 1 -b 16 "$here/apology.wav" \
    norm -3 pad 0.3 0.5

# --- The sample service -----------------------------------------------------
say "$work/welcome.wav" \
    "Welcome to St Example's Church. This is a short sample service, so that you can hear the phone line working. Let us be still, and listen."
# C major, then F major, then back to C: a few seconds of interlude.
chord "$work/organ1.wav" 6 261.63 329.63 392.00 523.25
chord "$work/organ2.wav" 5 174.61 349.23 440.00 523.25
chord "$work/organ3.wav" 6 261.63 329.63 392.00 523.25
say "$work/reading.wav" \
    "A reading from the twenty-third Psalm. The Lord is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth me beside the still waters. He restoreth my soul. Surely goodness and mercy shall follow me all the days of my life: and I will dwell in the house of the Lord for ever. This is the word of the Lord."
say "$work/blessing.wav" \
    "Thank you for joining us by telephone. Go in peace. Goodbye."
silence "$work/gap.wav" 0.8

sox "$work/gap.wav" "$work/welcome.wav" "$work/gap.wav" \
    "$work/organ1.wav" "$work/organ2.wav" "$work/organ3.wav" "$work/gap.wav" \
    "$work/reading.wav" "$work/gap.wav" "$work/blessing.wav" "$work/gap.wav" \
    "$work/service.wav"
# Mono 64 kbit/s CBR: plenty for speech on a phone and about 0.5 MB a minute.
ffmpeg -loglevel error -y -i "$work/service.wav" \
    -codec:a libmp3lame -b:a 64k -ac 1 -ar 44100 \
    -metadata title="Sample service" -metadata artist="St Example's Church" \
    "$here/sample-service.mp3"

soxi -D "$here/apology.wav" "$here/sample-service.mp3" | paste -d' ' - - |
    awk '{ printf "apology.wav %.1f s, sample-service.mp3 %.1f s\n", $1, $2 }'
