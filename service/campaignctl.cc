// campaignctl: a command-line client for people at a shell. Prints results
// and errors (code, message and every detail) readably; exits 1 on an RPC
// error and 2 on a usage error.
//
//   campaignctl --addr localhost:50051 health
//   campaignctl --addr localhost:50051 lists
//   campaignctl --addr localhost:50051 create --campaign_name=Promo
//       --sender=MYSHOP --list_id=123 --sms_text=Hi!
//       --start="2026-02-25 10:30" --request_id="$(uuidgen)"
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "campaigns/v1/campaign_service.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "service/flags_help.h"

ABSL_FLAG(std::string, addr, "localhost:50051", "The gateway's host:port.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(15), "The call's deadline.");
ABSL_FLAG(std::string, service, "",
          "health: the service to check (empty: the whole server).");
ABSL_FLAG(std::string, account_code, "",
          "The Connyline account (empty: the gateway's own).");
ABSL_FLAG(std::string, campaign_name, "", "create: the campaign's name.");
ABSL_FLAG(std::string, sender, "", "create: the registered sender.");
ABSL_FLAG(int64_t, list_id, 0, "create: the recipient list (see 'lists').");
ABSL_FLAG(std::string, sms_text, "", "create: the message text.");
ABSL_FLAG(std::string, start, "",
          "create: send time 'YYYY-MM-DD HH:MM' in the account's time zone.");
ABSL_FLAG(std::string, start_time, "",
          "create: send time as RFC 3339 (e.g. 2026-02-25T08:30:00Z), instead "
          "of --start.");
ABSL_FLAG(std::string, shortlink1, "", "create: optional tracked URL.");
ABSL_FLAG(std::string, request_id, "",
          "create: idempotency key; reuse it when retrying the same campaign "
          "(a UUID, for example).");
ABSL_FLAG(bool, validate_only, false,
          "create: validate and preview the cost only; nothing is sent.");

namespace {

constexpr char kUsage[] =
    "usage: campaignctl [--addr HOST:PORT] health|lists|create [flags]\n"
    "Run 'campaignctl --help' for every flag.";

// Prints a failed call's code, message and details; returns the exit code.
int PrintError(const grpc::Status& status) {
  std::cerr << "error: "
            << absl::StatusCodeToString(
                   static_cast<absl::StatusCode>(status.error_code()))
            << ": " << status.error_message() << "\n";
  google::rpc::Status details;
  if (status.error_details().empty() ||
      !details.ParseFromString(status.error_details())) {
    return 1;
  }
  for (const google::protobuf::Any& any : details.details()) {
    google::rpc::ErrorInfo info;
    google::rpc::BadRequest bad_request;
    google::rpc::RetryInfo retry;
    if (any.UnpackTo(&info)) {
      std::cerr << "  reason: " << info.reason() << " (" << info.domain()
                << ")\n";
      for (const auto& [key, value] : info.metadata()) {
        std::cerr << "  " << key << ": " << value << "\n";
      }
    } else if (any.UnpackTo(&bad_request)) {
      for (const auto& violation : bad_request.field_violations()) {
        std::cerr << "  bad field " << violation.field() << ": "
                  << violation.description() << "\n";
      }
    } else if (any.UnpackTo(&retry)) {
      std::cerr << "  retry after: "
                << google::protobuf::util::TimeUtil::ToString(
                       retry.retry_delay())
                << "\n";
    } else {
      std::cerr << "  detail: " << any.type_url() << "\n";
    }
  }
  return 1;
}

void SetDeadline(grpc::ClientContext& context) {
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
}

int Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(absl::GetFlag(FLAGS_service));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return PrintError(status);
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   response.status())
            << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? 0
             : 1;
}

int Lists(campaigns::v1::CampaignService::Stub& stub) {
  campaigns::v1::ListListsRequest request;
  request.set_account_code(absl::GetFlag(FLAGS_account_code));
  campaigns::v1::ListListsResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub.ListLists(&context, request, &response);
  if (!status.ok()) return PrintError(status);
  std::printf("%-12s %s\n", "LIST_ID", "NAME");
  for (const auto& list : response.lists()) {
    std::printf("%-12lld %s\n", static_cast<long long>(list.list_id()),
                list.name().c_str());
  }
  return 0;
}

int Create(campaigns::v1::CampaignService::Stub& stub) {
  campaigns::v1::CreateSmsCampaignRequest request;
  request.set_account_code(absl::GetFlag(FLAGS_account_code));
  request.set_campaign_name(absl::GetFlag(FLAGS_campaign_name));
  request.set_sender(absl::GetFlag(FLAGS_sender));
  request.set_list_id(absl::GetFlag(FLAGS_list_id));
  request.set_sms_text(absl::GetFlag(FLAGS_sms_text));
  request.set_shortlink1(absl::GetFlag(FLAGS_shortlink1));
  request.set_request_id(absl::GetFlag(FLAGS_request_id));
  request.set_validate_only(absl::GetFlag(FLAGS_validate_only));
  const std::string start = absl::GetFlag(FLAGS_start);
  const std::string start_time = absl::GetFlag(FLAGS_start_time);
  // One oneof: setting both would silently keep the last.
  if (!start.empty() && !start_time.empty()) {
    std::cerr << "campaignctl: give --start or --start_time, not both\n";
    return 2;
  }
  if (!start.empty()) request.set_start(start);
  if (!start_time.empty() && !google::protobuf::util::TimeUtil::FromString(
                                 start_time, request.mutable_start_time())) {
    std::cerr << "campaignctl: --start_time must be RFC 3339, e.g. "
                 "2026-02-25T08:30:00Z\n";
    return 2;
  }
  campaigns::v1::CreateSmsCampaignResponse response;
  grpc::ClientContext context;
  SetDeadline(context);
  grpc::Status status = stub.CreateSmsCampaign(&context, request, &response);
  if (!status.ok()) return PrintError(status);
  const auto& campaign = response.campaign();
  std::cout << response.message() << "\n"
            << "  campaign_name: " << campaign.campaign_name() << "\n"
            << "  sender:        " << campaign.sender() << "\n"
            << "  list_id:       " << campaign.list_id() << "\n"
            << "  start:         " << campaign.start() << " ("
            << google::protobuf::util::TimeUtil::ToString(campaign.start_time())
            << ")\n"
            << "  time_zone:     " << campaign.time_zone() << "\n";
  if (!campaign.created_at().empty()) {
    std::cout << "  created_at:    " << campaign.created_at() << "\n";
  }
  const auto& preview = response.preview();
  std::cout << "  preview:       "
            << campaigns::v1::SmsEncoding_Name(preview.encoding()) << ", "
            << preview.units() << " units, " << preview.segments()
            << " segment(s) per recipient\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // Plain --help: every flag and exit 0.
  const std::vector<std::string> flag_files = {"service/campaignctl.cc"};
  campaign_gateway::SetHelpFiles(flag_files);
  if (campaign_gateway::AsksForHelp(argc, argv)) {
    std::cout << campaign_gateway::FlagsHelp(kUsage, flag_files);
    return 0;
  }
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::cerr << kUsage << "\n";
    return 2;
  }
  const std::string command = args[1];
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_addr),
                                     grpc::InsecureChannelCredentials());
  if (command == "health") return Health(channel);
  auto stub = campaigns::v1::CampaignService::NewStub(channel);
  if (command == "lists") return Lists(*stub);
  if (command == "create") return Create(*stub);
  std::cerr << "campaignctl: unknown command '" << command << "'\n"
            << kUsage << "\n";
  return 2;
}
