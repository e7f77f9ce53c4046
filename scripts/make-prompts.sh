#!/usr/bin/env bash
# Makes the English prompts of the example IVR files (examples/ivr/*.xml) with a speech
# synthesizer: examples/ivr/prompts/en/<name>.wav for every entry of the PROMPTS list below.
#
#   scripts/make-prompts.sh [--out DIR] [--voice VOICE] [--speed WPM]
#
#   --out DIR      where the WAV files go (default: examples/ivr/prompts/en)
#   --voice VOICE  espeak-ng voice (default: en-us)
#   --speed WPM    words per minute (default: 190)
#
# Needs only espeak-ng and sox (Debian/Ubuntu: apt-get install espeak-ng sox). Every file is
# 8000 Hz, mono, 16-bit PCM, the format the server plays as is, with the leading silence removed
# and the pauses shortened to keep the files small (under 400 KB for all of them). Running it
# again rewrites the same files with the same bytes (no dither, fixed random seed), so it is safe
# to run at any time. To change a sentence or add a prompt, edit PROMPTS and run the script; a
# <voice>NAME.wav</voice> in an IVR file needs the entry NAME here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$here/examples/ivr/prompts/en"
voice=en-us
speed=190

# name|sentence
PROMPTS=(
  # examples/ivr/auto_attendant.xml
  "aa_welcome|Welcome, please enter the extension number."
  "aa_try_again|Please try another extension."
  "ext_busy|The extension is busy."
  "ext_no_answer|There is no answer."
  "ext_not_exist|That number does not exist."
  "ext_rejected|The call was declined."
  "ext_failed|The call failed."
  # examples/ivr/menu.xml
  "menu_welcome|Thank you for calling."
  "menu_main|Sales, press 1. Support, 2. Operator, 9. Or dial an extension."
  "menu_support|Hardware, press 1. Software, 2. To go back, star."
  "support_closed|Support is open weekdays, nine to five."
  "unavailable|Sorry, nobody is available."
  # both
  "goodbye|Goodbye."
)

die() {
  echo "make-prompts: $*" >&2
  exit 1
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out_dir="${2:?--out needs a folder}"; shift 2 ;;
    --voice) voice="${2:?--voice needs a voice name}"; shift 2 ;;
    --speed) speed="${2:?--speed needs words per minute}"; shift 2 ;;
    *) die "unknown argument: $1 (accepted: --out DIR, --voice VOICE, --speed WPM)" ;;
  esac
done

command -v espeak-ng >/dev/null || die "espeak-ng is needed (Debian package espeak-ng)"
command -v sox >/dev/null || die "sox is needed (Debian package sox)"

mkdir -p "$out_dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for entry in "${PROMPTS[@]}"; do
  name="${entry%%|*}"
  text="${entry#*|}"
  [[ "$name" =~ ^[a-z0-9_]+$ ]] || die "bad prompt name: $name"
  espeak-ng -v "$voice" -s "$speed" -w "$tmp/raw.wav" -- "$text"
  # -D: no dither, -R: repeatable. silence: drop the leading silence and shorten every pause
  # (between sentences and at the end) to 0.2 s; norm: peak at -1 dB. 8 kHz mono 16-bit PCM.
  sox -D -R "$tmp/raw.wav" -r 8000 -c 1 -b 16 -e signed-integer "$tmp/$name.wav" \
    silence -l 1 0.02 0.5% -1 0.2 0.5% norm -1
  mv -f "$tmp/$name.wav" "$out_dir/$name.wav"
  echo "$out_dir/$name.wav: $text"
done
