// ceiling_server: the benchmark's upper bound. A gRPC server built the same
// way as campaign-gateway (callback API, same server builder options) whose
// ListLists answers a fixed one-list response at once, with no upstream call.
// The gateway can never be faster than this on the same machine, so
// bench/run.sh reports the gateway's requests/s as a ratio of this one's.
//
// With --answer_from_thread the answer is finished from another thread, as
// the gateway finishes calls from its upstream event loops: the difference
// between the two modes is what gRPC itself charges for answering
// asynchronously, before any HTTP work.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/mutex.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "host:port to serve on (port 0 picks a free port; the chosen port "
          "is printed on stdout as 'listening PORT').");
ABSL_FLAG(bool, answer_from_thread, false,
          "Finish each call from a separate thread instead of inside the "
          "handler (the gateway's situation).");

namespace {

// One thread that finishes the reactors handed to it, in batches.
class Finisher {
 public:
  Finisher() : thread_([this] { Run(); }) {}
  ~Finisher() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }

  void Finish(grpc::ServerUnaryReactor* reactor) {
    absl::MutexLock lock(&mu_);
    queue_.push_back(reactor);
  }

 private:
  void Run() {
    std::vector<grpc::ServerUnaryReactor*> batch;
    while (true) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(
            +[](Finisher* f) ABSL_NO_THREAD_SAFETY_ANALYSIS {
              return f->stopping_ || !f->queue_.empty();
            },
            this));
        if (stopping_) return;
        batch.swap(queue_);
      }
      for (grpc::ServerUnaryReactor* reactor : batch) {
        reactor->Finish(grpc::Status::OK);
      }
      batch.clear();
    }
  }

  absl::Mutex mu_;
  std::vector<grpc::ServerUnaryReactor*> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

class CeilingService final
    : public campaigns::v1::CampaignService::CallbackService {
 public:
  explicit CeilingService(Finisher* finisher) : finisher_(finisher) {}

  grpc::ServerUnaryReactor* ListLists(
      grpc::CallbackServerContext* context,
      const campaigns::v1::ListListsRequest* request,
      campaigns::v1::ListListsResponse* response) override {
    // The same answer the gateway builds from nginx's fixed body.
    campaigns::v1::ContactList* list = response->add_lists();
    list->set_list_id(123);
    list->set_name("2026 Clients");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (finisher_ != nullptr) {
      finisher_->Finish(reactor);
    } else {
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

 private:
  Finisher* const finisher_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "gRPC ListLists without an upstream: the benchmark's ceiling.");
  absl::ParseCommandLine(argc, argv);

  // Blocked before gRPC starts its threads, so sigwait() below gets them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  std::unique_ptr<Finisher> finisher;
  if (absl::GetFlag(FLAGS_answer_from_thread)) {
    finisher = std::make_unique<Finisher>();
  }
  CeilingService service(finisher.get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen),
                           grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  // The channel arguments campaign-gateway sets (service/main.cc, defaults).
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, 5 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, 30 * 1000);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "ceiling_server: cannot listen on '%s'\n",
                 absl::GetFlag(FLAGS_listen).c_str());
    return 2;
  }
  std::printf("listening %d\n", port);
  std::fflush(stdout);

  int signal = 0;
  sigwait(&stop_signals, &signal);
  server->Shutdown();
  server->Wait();
  finisher.reset();
  return 0;
}
