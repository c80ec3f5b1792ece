#include "tests/support/grpc_callback_queue.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tests/support/fake_connyline.h"

namespace campaign_gateway::testing_util {
namespace {

class KeepGrpcCallbackQueue : public ::testing::Environment {
 public:
  void SetUp() override {
    const ClosedPort closed;
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", closed.port()),
                                   grpc::InsecureChannelCredentials());
    auto stub = campaigns::v1::CampaignService::NewStub(channel_);
    struct State {
      grpc::ClientContext context;
      campaigns::v1::ListListsRequest request;
      campaigns::v1::ListListsResponse response;
      absl::Notification done;
    };
    auto state = std::make_shared<State>();
    state->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
    stub->async()->ListLists(
        &state->context, &state->request, &state->response,
        [state](const grpc::Status&) { state->done.Notify(); });
    state->done.WaitForNotification();  // refused or timed out: either will do
  }
  void TearDown() override { channel_.reset(); }

 private:
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace

::testing::Environment* NewKeepGrpcCallbackQueue() {
  return new KeepGrpcCallbackQueue;
}

}  // namespace campaign_gateway::testing_util
