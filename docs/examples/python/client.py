"""A client of campaigns.v1.CampaignService: lists, an idempotent create,
and every kind of error detail decoded. Run it against the sandbox gateway
(scripts/run.sh) with the generated modules on PYTHONPATH:

    PYTHONPATH=gen python3 docs/examples/python/client.py localhost:50051
"""
import argparse
import sys
import time
import uuid

import grpc
from google.rpc import error_details_pb2, status_pb2

from campaigns.v1 import campaign_service_pb2 as pb
from campaigns.v1 import campaign_service_pb2_grpc as pb_grpc


def error_details(err):
    """The google.rpc.Status the gateway sends in grpc-status-details-bin."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            return status_pb2.Status.FromString(value)
    return None


def describe(err):
    """Prints a failed call: code, message and every detail."""
    print(f"error: {err.code().name}: {err.details()}")
    status = error_details(err)
    if status is None:
        print("  no details: raised by the client library itself "
              "(e.g. at its own deadline)")
        return
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            print(f"  reason: {info.reason} ({info.domain})")
            for key in sorted(info.metadata):
                print(f"  {key}: {info.metadata[key]}")
            if info.metadata.get("request_sent") == "false":
                print("  nothing reached Connyline")
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            seconds = retry.retry_delay.ToTimedelta().total_seconds()
            print(f"  retry after: {seconds:g}s")
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            for violation in bad_request.field_violations:
                print(f"  bad field {violation.field}: {violation.description}")


def create_request(list_id):
    """A campaign one week ahead, on a whole minute, with its own key."""
    request = pb.CreateSmsCampaignRequest(
        campaign_name="Spring promo",
        sender="MYSHOP",
        list_id=list_id,
        sms_text="Hi! Our offer: {shortlink1}",
        shortlink1="https://www.example.com/promo",
        # One key per campaign, reused on every retry of it.
        request_id=str(uuid.uuid4()),
    )
    request.start_time.FromSeconds((int(time.time()) // 60 + 7 * 24 * 60) * 60)
    return request


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address", help="host:port of the gateway")
    parser.add_argument("--service-config", help="retry policy JSON to load")
    args = parser.parse_args()
    options = []
    if args.service_config:
        with open(args.service_config, encoding="utf-8") as config:
            options.append(("grpc.service_config", config.read()))
    channel = grpc.insecure_channel(args.address, options=options)
    stub = pb_grpc.CampaignServiceStub(channel)

    # Always set a deadline (timeout=, in seconds).
    lists = stub.ListLists(pb.ListListsRequest(), timeout=5)
    for contact_list in lists.lists:
        print(f"list {contact_list.list_id}: {contact_list.name}")

    request = create_request(lists.lists[0].list_id)
    response = stub.CreateSmsCampaign(request, timeout=10)
    print(f"created: {response.campaign.campaign_name}, "
          f"start {response.campaign.start}")
    # A retry with the same request_id is answered from the gateway's
    # memory, and nothing is sent twice.
    response, call = stub.CreateSmsCampaign.with_call(request, timeout=10)
    replayed = dict(call.initial_metadata()).get("idempotent-replayed")
    print(f"created again: {response.campaign.campaign_name}, "
          f"replayed: {replayed}")

    # The sandbox's fault lists (README "Sandbox fault lists"), and a
    # request the gateway refuses itself.
    invalid = create_request(0)
    invalid.sender = "MY SHOP"
    for failing, timeout in ((invalid, 10),
                             (create_request(990504), 0.5),
                             # Last: a 429 holds the gateway back for 30 s.
                             (create_request(990429), 10)):
        try:
            stub.CreateSmsCampaign(failing, timeout=timeout)
            print("unexpected success")
            return 1
        except grpc.RpcError as err:
            describe(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
