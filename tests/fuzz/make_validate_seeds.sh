#!/usr/bin/env bash
# Regenerates tests/fuzz/corpus/fuzz_validate/: CreateSmsCampaignRequests
# in protobuf wire format, from the documented examples in
# ../shared/upstream/create-sms-campaign.txt (plus edge cases). Run it after
# changing campaign_service.proto; the outputs are committed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=tests/fuzz/corpus/fuzz_validate
mkdir -p "$out"

seed() {  # seed NAME TEXTPROTO
  protoc --proto_path=proto --proto_path=/usr/include \
    --encode=campaigns.v1.CreateSmsCampaignRequest \
    campaigns/v1/campaign_service.proto <<<"$2" >"$out/$1"
}

seed documented 'campaign_name: "February 2026 Promo" sender: "MYSHOP"
  list_id: 123 start: "2026-02-25 10:30"
  sms_text: "Hi! Don'"'"'t miss our exclusive offer. Visit: {shortlink1}"
  shortlink1: "https://www.example.com/promo"'
seed documented_no_link 'campaign_name: "February 2026 Promo" sender: "MYSHOP"
  list_id: 123 start: "2026-02-25 10:30"
  sms_text: "Hi! Your exclusive offer is waiting for you."'
# start_time 2026-03-29 01:00:00 UTC: 04:00 in Athens, just after the DST gap.
seed start_time_dst 'account_code: "ACME01" campaign_name: "Πασχαλινή προσφορά 🐣"
  sender: "306900000000" list_id: 9223372036854775807
  start_time { seconds: 1774746000 }
  sms_text: "Γεια σας!\n\"Quotes\", \\backslash\\, tab\there, emoji 😀 {shortlink1}"
  shortlink1: "http://[::1]:8080/a?b=c#d"'
seed invalid_all 'account_code: "../other" campaign_name: " " sender: "MY SHOP!"
  list_id: -5 start: "2026-02-30 10:30" start_time { seconds: 61 nanos: 5 }
  sms_text: "\001 {shortlink1}" shortlink1: "ftp://x"'
printf '2026-02-25 10:30' >"$out/start_minute"
ls -l "$out"
