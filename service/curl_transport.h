// Step 4 of the flow, for real: HttpTransport over libcurl's multi
// interface. Each shard is one event-loop thread that alone owns its multi
// handle, its easy handles and their keep-alive connections; Start() and
// Cancel() only enqueue work and wake the loop, so no caller ever blocks on
// the network.
#ifndef CAMPAIGN_GATEWAY_SERVICE_CURL_TRANSPORT_H_
#define CAMPAIGN_GATEWAY_SERVICE_CURL_TRANSPORT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/http_types.h"

namespace campaign_gateway {

// How requests reach the upstream: kAuto offers HTTP/2 by ALPN over https
// (HTTP/1.1 if the server declines) and speaks HTTP/1.1 over http; kOff is
// always HTTP/1.1; kPriorKnowledge speaks HTTP/2 without asking, also over
// plain http (h2c, for test upstreams).
enum class UpstreamHttp2 { kAuto, kOff, kPriorKnowledge };

struct CurlTransportOptions {
  // Event-loop threads; requests are spread across them round-robin. Several
  // shards keep each multi handle's connection pool small.
  int shards = 2;
  // Most connections each shard opens (and keeps alive) to the upstream;
  // requests beyond them wait inside the shard for a free connection (or,
  // with HTTP/2, a free stream), their deadlines still running.
  long max_connections_per_shard = 512;
  UpstreamHttp2 http2 = UpstreamHttp2::kAuto;
  absl::Duration connect_timeout = absl::Seconds(5);
  // Larger answers fail with kResponseTooLarge (the body is not buffered).
  size_t max_response_bytes = 1 << 20;
  // PEM bundle to trust instead of the system CAs; empty: system CAs.
  std::string ca_file;
};

// Beyond HttpTransport's contract: a timeout while still connecting, with
// the deadline not yet reached, is kConnectFailed; and a non-idempotent
// request (POST) is never resent, not even by curl's own retry after a reused
// keep-alive connection closes unanswered (that is kConnectionLost instead).
class CurlTransport final : public HttpTransport {
 public:
  explicit CurlTransport(const CurlTransportOptions& options);
  // Cancels what is in flight (callbacks get kCancelled) and joins the loops.
  ~CurlTransport() override;

  CurlTransport(const CurlTransport&) = delete;
  CurlTransport& operator=(const CurlTransport&) = delete;

  uint64_t Start(HttpRequest request, absl::Time deadline,
                 Callback done) override;
  void Cancel(uint64_t id) override;

 private:
  class Shard;
  struct Call;
  class Share;

  // Called once a callback has returned. The destructor waits for every
  // started call to get here, so a callback that starts another call while
  // the transport shuts down still gets its kCancelled.
  void CallFinished();

  // TLS sessions and DNS answers shared by every shard: a connection opened
  // by one shard resumes the TLS session another one negotiated. Declared
  // before shards_ so that it outlives their easy handles.
  std::unique_ptr<Share> share_;
  // A call with id `id` lives on shards_[id % shards_.size()].
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> next_id_{1};
  absl::Mutex mu_;
  int64_t outstanding_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace campaign_gateway

#endif  // CAMPAIGN_GATEWAY_SERVICE_CURL_TRANSPORT_H_
