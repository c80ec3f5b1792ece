// keyed_create_client: drives CreateSmsCampaign calls with idempotency keys
// (request_id) at campaign-gateway replicas, for bench/exactly_once.sh.
//
//   --mode=exactly_once  each of --keys keys is sent to several replicas in
//       one of five patterns (below), --concurrency keys at a time. Checks,
//       per key, that every call ended OK with the same answer, that exactly
//       one answer came without `idempotent-replayed: true` (the leader's),
//       and that the campaign is the key's own.
//   --mode=latency  --keys calls, each with its own key (or none with
//       --keyed=false), --concurrency in flight, spread over --targets.
//
// Each key K is sent as request_id "K" with campaign_name "bench-K", so that
// nginx playing Connyline can count the POSTs per key (Connyline's request
// has no request_id). The summary goes to stdout as "name value" lines.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::vector<std::string>, targets, {},
          "host:port of each gateway replica, comma-separated.");
ABSL_FLAG(std::string, mode, "exactly_once", "exactly_once or latency.");
ABSL_FLAG(int, keys, 2000,
          "exactly_once: distinct keys; latency: calls (one key each).");
ABSL_FLAG(int, concurrency, 32,
          "exactly_once: keys under way at once; latency: calls in flight.");
ABSL_FLAG(bool, keyed, true, "latency: set request_id (else no key).");
ABSL_FLAG(std::string, key_prefix, "k",
          "Keys are PREFIX-0, PREFIX-1, ...: make it unique per run.");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(10), "Deadline per call.");
ABSL_FLAG(std::string, calls_out, "",
          "Optional TSV of every call: key, target, code, replayed, ms, "
          "answer message.");
ABSL_FLAG(std::string, keys_out, "",
          "exactly_once: TSV per key: campaign_name, verdict (ok or what is "
          "wrong), the message of its answer (nginx's request id in it).");

namespace {

using campaigns::v1::CampaignService;
using campaigns::v1::CreateSmsCampaignRequest;
using campaigns::v1::CreateSmsCampaignResponse;
using Clock = std::chrono::steady_clock;

// How one key is spread over the replicas: waves of calls; the calls of a
// wave run concurrently, a wave starts when the previous one has ended.
// Replica numbers are offsets from the key's first replica.
const std::vector<std::vector<std::vector<int>>> kPatterns = {
    {{0, 1, 2}},      // 3 at once
    {{0}, {1}, {2}},  // 3 one after another
    {{0}, {1, 2}},    // 1, then 2 at once
    {{0, 1}},         // 2 at once
    {{0}, {1}},       // 2 one after another
};
const char* const kPatternNames[] = {"3 at once", "3 in sequence",
                                     "1 then 2 at once", "2 at once",
                                     "2 in sequence"};

struct Call {
  int key = 0;
  int target = 0;
  grpc::ClientContext context;
  CreateSmsCampaignRequest request;
  CreateSmsCampaignResponse response;
  Clock::time_point started;
  // Filled in when it ends.
  grpc::Status status;
  bool replayed = false;
  double ms = 0;
};

struct KeyState {
  int pattern = 0;
  int first_target = 0;
  size_t wave = 0;
  int pending = 0;  // calls of the current wave still under way
  std::vector<Call*> calls;
};

class Driver {
 public:
  Driver(std::vector<std::unique_ptr<CampaignService::Stub>> stubs,
         bool exactly_once)
      : stubs_(std::move(stubs)), exactly_once_(exactly_once) {}

  void Run() {
    const int keys = absl::GetFlag(FLAGS_keys);
    keys_.resize(keys);
    const int in_flight = std::max(1, absl::GetFlag(FLAGS_concurrency));
    started_at_ = Clock::now();
    std::vector<Call*> launch;
    {
      absl::MutexLock lock(&mu_);
      for (int i = 0; i < in_flight && next_key_ < keys; ++i) {
        StartKeyLocked(next_key_++, launch);
      }
    }
    Launch(launch);
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Driver* d) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return d->keys_done_ == static_cast<int>(d->keys_.size());
          },
          this));
    }
    elapsed_s_ =
        std::chrono::duration<double>(Clock::now() - started_at_).count();
  }

  int Report() const;

 private:
  std::string Key(int i) const {
    return absl::StrCat(absl::GetFlag(FLAGS_key_prefix), "-", i);
  }

  // Starts the calls prepared under the lock. Outside it: gRPC may run a
  // call's callback inline.
  void Launch(const std::vector<Call*>& calls) {
    for (Call* call : calls) {
      call->started = Clock::now();
      stubs_[call->target]->async()->CreateSmsCampaign(
          &call->context, &call->request, &call->response,
          [this, call](grpc::Status status) { Done(call, std::move(status)); });
    }
  }

  void StartKeyLocked(int i, std::vector<Call*>& launch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    KeyState& key = keys_[i];
    const int replicas = static_cast<int>(stubs_.size());
    if (exactly_once_) {
      key.pattern = i % static_cast<int>(kPatterns.size());
      key.first_target = (i / static_cast<int>(kPatterns.size())) % replicas;
    } else {
      key.pattern = -1;
      key.first_target = i % replicas;
    }
    StartWaveLocked(i, launch);
  }

  // Prepares the calls of key i's current wave into `launch`.
  void StartWaveLocked(int i, std::vector<Call*>& launch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    KeyState& key = keys_[i];
    const int replicas = static_cast<int>(stubs_.size());
    std::vector<int> targets;
    if (key.pattern < 0) {
      targets = {key.first_target};
    } else {
      for (int offset : kPatterns[key.pattern][key.wave]) {
        targets.push_back((key.first_target + offset) % replicas);
      }
    }
    key.pending = static_cast<int>(targets.size());
    for (int target : targets) {
      auto owned = std::make_unique<Call>();
      Call* call = owned.get();
      calls_.push_back(std::move(owned));
      key.calls.push_back(call);
      call->key = i;
      call->target = target;
      Fill(i, call->request);
      call->context.set_deadline(
          absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_deadline)));
      launch.push_back(call);
    }
  }

  void Fill(int i, CreateSmsCampaignRequest& request) const {
    const std::string key = Key(i);
    request.set_campaign_name(absl::StrCat("bench-", key));
    request.set_sender("BENCH");
    request.set_list_id(123);
    request.set_sms_text("Hi! Don't miss our exclusive offer.");
    request.set_start("2026-02-25 10:30");
    if (exactly_once_ || absl::GetFlag(FLAGS_keyed)) {
      request.set_request_id(key);
    }
  }

  void Done(Call* call, grpc::Status status) {
    const Clock::time_point now = Clock::now();
    std::vector<Call*> launch;
    {
      absl::MutexLock lock(&mu_);
      Record(call, now, std::move(status), launch);
    }
    Launch(launch);
  }

  void Record(Call* call, Clock::time_point now, grpc::Status status,
              std::vector<Call*>& launch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    call->ms =
        std::chrono::duration<double, std::milli>(now - call->started).count();
    call->status = std::move(status);
    const auto& metadata = call->context.GetServerInitialMetadata();
    auto it = metadata.find("idempotent-replayed");
    call->replayed = it != metadata.end() && it->second == "true";
    KeyState& key = keys_[call->key];
    if (--key.pending > 0) return;
    if (key.pattern >= 0 && ++key.wave < kPatterns[key.pattern].size()) {
      return StartWaveLocked(call->key, launch);
    }
    ++keys_done_;
    if (next_key_ < static_cast<int>(keys_.size())) {
      StartKeyLocked(next_key_++, launch);
    }
  }

  const std::vector<std::unique_ptr<CampaignService::Stub>> stubs_;
  const bool exactly_once_;
  Clock::time_point started_at_;
  double elapsed_s_ = 0;
  mutable absl::Mutex mu_;
  std::vector<KeyState> keys_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Call>> calls_ ABSL_GUARDED_BY(mu_);
  int next_key_ ABSL_GUARDED_BY(mu_) = 0;
  int keys_done_ ABSL_GUARDED_BY(mu_) = 0;
};

// The p-th percentile (nearest rank) of `ms`, sorted here.
double Percentile(std::vector<double> ms, double p) {
  if (ms.empty()) return 0;
  std::sort(ms.begin(), ms.end());
  size_t rank = static_cast<size_t>(p * static_cast<double>(ms.size()));
  if (rank > 0) --rank;
  return ms[std::min(rank, ms.size() - 1)];
}

void PrintLatency(const std::string& name, const std::vector<double>& ms) {
  std::printf("%s_calls %zu\n%s_p50_ms %.3f\n%s_p99_ms %.3f\n", name.c_str(),
              ms.size(), name.c_str(), Percentile(ms, 0.50), name.c_str(),
              Percentile(ms, 0.99));
}

int Driver::Report() const {
  absl::MutexLock lock(&mu_);
  std::vector<double> all, fresh, replayed;
  // Replayed answers by pattern: a concurrent repeat waits for its leader,
  // a later one reads the recorded answer.
  std::vector<std::vector<double>> replayed_by_pattern(kPatterns.size());
  std::map<std::string, int> codes;
  int ok = 0, replays = 0, failures_shown = 0;
  std::FILE* calls_out = nullptr;
  if (const std::string path = absl::GetFlag(FLAGS_calls_out); !path.empty()) {
    calls_out = std::fopen(path.c_str(), "w");
  }
  for (const auto& call : calls_) {
    all.push_back(call->ms);
    (call->replayed ? replayed : fresh).push_back(call->ms);
    if (call->replayed && keys_[call->key].pattern >= 0) {
      replayed_by_pattern[keys_[call->key].pattern].push_back(call->ms);
    }
    if (call->status.ok()) ++ok;
    if (call->replayed) ++replays;
    ++codes[absl::StrCat(call->status.error_code())];
    if (!call->status.ok() && failures_shown++ < 10) {
      std::fprintf(stderr,
                   "keyed_create_client: key %s to %s: code %d after %.1f ms: "
                   "%s\n",
                   Key(call->key).c_str(),
                   absl::GetFlag(FLAGS_targets)[call->target].c_str(),
                   call->status.error_code(), call->ms,
                   call->status.error_message().c_str());
    }
    if (calls_out != nullptr) {
      std::fprintf(calls_out, "%s\t%d\t%d\t%d\t%.3f\t%s\n",
                   Key(call->key).c_str(), call->target,
                   call->status.error_code(), call->replayed ? 1 : 0, call->ms,
                   call->response.message().c_str());
    }
  }
  if (calls_out != nullptr) std::fclose(calls_out);

  std::printf("keys %zu\ncalls %zu\nok %d\nnot_ok %zu\nreplayed %d\n",
              keys_.size(), calls_.size(), ok, calls_.size() - ok, replays);
  for (const auto& [code, n] : codes) {
    std::printf("code_%s %d\n", code.c_str(), n);
  }
  std::printf("seconds %.3f\ncalls_per_s %.0f\n", elapsed_s_,
              static_cast<double>(calls_.size()) / elapsed_s_);
  PrintLatency("all", all);
  if (exactly_once_) {
    PrintLatency("fresh", fresh);
    PrintLatency("replayed", replayed);
    for (size_t p = 0; p < kPatterns.size(); ++p) {
      PrintLatency(absl::StrCat("replayed_pattern_", p),
                   replayed_by_pattern[p]);
      std::printf("pattern_%zu_name %s\n", p, kPatternNames[p]);
    }
  }
  if (!exactly_once_) return ok == static_cast<int>(calls_.size()) ? 0 : 1;

  // Per key: every call OK, the same answer, exactly one answer not
  // replayed, and the key's own campaign.
  std::ofstream keys_out;
  if (const std::string path = absl::GetFlag(FLAGS_keys_out); !path.empty()) {
    keys_out.open(path);
  }
  int keys_bad = 0, bad_shown = 0;
  std::vector<int> bad_by_pattern(kPatterns.size(), 0);
  for (size_t i = 0; i < keys_.size(); ++i) {
    const KeyState& key = keys_[i];
    const std::string name = absl::StrCat("bench-", Key(static_cast<int>(i)));
    std::string verdict = "ok";
    int leaders = 0;
    const Call* first_ok = nullptr;
    for (const Call* call : key.calls) {
      if (!call->status.ok()) {
        verdict = absl::StrCat("call to replica ", call->target, " failed");
        break;
      }
      if (!call->replayed) ++leaders;
      if (call->response.campaign().campaign_name() != name) {
        verdict = absl::StrCat("answer names '",
                               call->response.campaign().campaign_name(), "'");
        break;
      }
      if (first_ok == nullptr) {
        first_ok = call;
      } else if (call->response.SerializeAsString() !=
                 first_ok->response.SerializeAsString()) {
        verdict = "answers differ";
        break;
      }
    }
    if (verdict == "ok" && leaders != 1) {
      verdict = absl::StrCat(leaders, " answers not replayed");
    }
    const std::string message =
        first_ok == nullptr ? "" : first_ok->response.message();
    if (keys_out.is_open()) {
      keys_out << name << '\t' << verdict << '\t' << message << '\n';
    }
    if (verdict != "ok") {
      ++keys_bad;
      ++bad_by_pattern[key.pattern];
      if (bad_shown++ < 10) {
        std::fprintf(stderr,
                     "keyed_create_client: key %s (%s, from replica "
                     "%d): %s\n",
                     Key(static_cast<int>(i)).c_str(),
                     kPatternNames[key.pattern], key.first_target,
                     verdict.c_str());
      }
    }
  }
  std::printf("keys_bad %d\n", keys_bad);
  for (size_t p = 0; p < kPatterns.size(); ++p) {
    if (bad_by_pattern[p] > 0) {
      std::printf("keys_bad_pattern_%zu %d\n", p, bad_by_pattern[p]);
    }
  }
  return keys_bad == 0 && ok == static_cast<int>(calls_.size()) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Keyed CreateSmsCampaign load for bench/exactly_once.sh.");
  absl::ParseCommandLine(argc, argv);
  const std::vector<std::string> targets = absl::GetFlag(FLAGS_targets);
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (targets.empty() || (mode != "exactly_once" && mode != "latency") ||
      absl::GetFlag(FLAGS_keys) <= 0) {
    std::fprintf(stderr,
                 "keyed_create_client: need --targets, --keys > 0 and "
                 "--mode=exactly_once|latency\n");
    return 2;
  }
  std::vector<std::unique_ptr<CampaignService::Stub>> stubs;
  for (const std::string& target : targets) {
    auto channel =
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
    if (!channel->WaitForConnected(
            absl::ToChronoTime(absl::Now() + absl::Seconds(5)))) {
      std::fprintf(stderr, "keyed_create_client: cannot connect to %s\n",
                   target.c_str());
      return 2;
    }
    stubs.push_back(CampaignService::NewStub(channel));
  }
  Driver driver(std::move(stubs), mode == "exactly_once");
  driver.Run();
  return driver.Report();
}
