#include "tests/support/harness_calls.h"

#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace campaign_gateway::testing_util {

using ::campaigns::v1::CampaignService;
using ::campaigns::v1::CreateSmsCampaignRequest;

FakeConnyline::Handler Delayed(absl::Duration delay) {
  return [delay](const RecordedRequest& request) {
    Reply reply = FakeConnyline::DefaultConnyline(request);
    reply.delay = delay;
    return reply;
  };
}

FakeConnyline::Handler Always(Reply reply) {
  return [reply = std::move(reply)](const RecordedRequest&) { return reply; };
}

std::string RpcName(Rpc rpc) {
  return rpc == Rpc::kListLists ? "ListLists" : "Create";
}

void PrintTo(Rpc rpc, std::ostream* os) { *os << RpcName(rpc); }

Reply Documented(Rpc rpc) {
  RecordedRequest request;
  request.headers = {{"authorization", absl::StrCat("Bearer ", kHarnessToken)}};
  if (rpc == Rpc::kListLists) {
    request.method = "GET";
    request.target = "/api/v1/acme/lists/get-all/";
  } else {
    request.method = "POST";
    request.target = "/api/v1/acme/campaigns/sms/create";
    request.body =
        R"({"campaign_name":"Spring promo","sender":"MYSHOP","list_id":123,)"
        R"("sms_text":"Hello! {shortlink1}","start":"2026-02-25 10:30",)"
        R"("shortlink1":"https://www.example.com/promo"})";
  }
  return FakeConnyline::DefaultConnyline(request);
}

std::shared_ptr<AsyncCall> Start(CampaignService::Stub& stub, Rpc rpc,
                                 absl::Duration timeout,
                                 const CreateSmsCampaignRequest& create) {
  auto call = std::make_shared<AsyncCall>();
  if (timeout != absl::InfiniteDuration()) {
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  call->started = absl::Now();
  auto done = [call](grpc::Status status) {
    call->status = std::move(status);
    call->finished = absl::Now();
    call->done.Notify();
  };
  if (rpc == Rpc::kListLists) {
    stub.async()->ListLists(&call->context, &call->list_request, &call->lists,
                            std::move(done));
  } else {
    call->create_request = create;
    stub.async()->CreateSmsCampaign(&call->context, &call->create_request,
                                    &call->created, std::move(done));
  }
  return call;
}

void WaitAll(const std::vector<std::shared_ptr<AsyncCall>>& calls,
             absl::Duration bound) {
  const absl::Time deadline = absl::Now() + bound;
  for (const auto& call : calls) {
    if (!call->done.WaitForNotificationWithDeadline(deadline)) {
      ADD_FAILURE() << "a call hung for more than " << bound;
      call->context.TryCancel();
      call->done.WaitForNotification();
    }
  }
}

std::shared_ptr<AsyncCall> Call(CampaignService::Stub& stub, Rpc rpc,
                                absl::Duration timeout,
                                const CreateSmsCampaignRequest& create) {
  std::shared_ptr<AsyncCall> call = Start(stub, rpc, timeout, create);
  WaitAll({call}, (timeout == absl::InfiniteDuration() ? absl::ZeroDuration()
                                                       : timeout) +
                      kHangBound);
  return call;
}

std::shared_ptr<AsyncCall> Create(CampaignService::Stub& stub,
                                  const CreateSmsCampaignRequest& request,
                                  absl::Duration timeout) {
  return Call(stub, Rpc::kCreate, timeout, request);
}

}  // namespace campaign_gateway::testing_util
