#!/usr/bin/env python3
"""Checks template.yaml the way `sam deploy` will meet it, beyond what `cfn-lint` and `sam validate --lint`
catch (both passed a template whose route auth SAM's own translator refuses):

1. SAM's translator (the code `sam deploy` runs) turns the template into CloudFormation without error,
   and the HTTP API it generates has exactly the routes the Rust model expects: greedy `ANY` routes per
   endpoint group plus `$default`, none ending in '/'.
2. `sam deploy --guided` asks no "has no authentication. Is this okay?" question (it would ask one per
   route event).
3. Each endpoint group's throttling (`RouteSettings`) reaches the generated stage under its route key.

Run with the venv `.ci/run` builds:  target/infra-venv/bin/python infra/scripts/check-template.py
"""

import os
import re
import sys
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "ap-northeast-1")
os.environ.setdefault("SAM_CLI_TELEMETRY", "0")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_ROUTES = {
    "/api/auth/{proxy+}": "AuthFunction",
    "/api/admin/{proxy+}": "AdminFunction",
    "/api/members/{proxy+}": "MembersFunction",
    "/api/merchants/{proxy+}": "MerchantsFunction",
    "/api/payments/{proxy+}": "EcpayCallbackFunction",
    "/$default": "FrontDoorFunction",
}


class NoManagedPolicies:
    def load(self, *args, **kwargs):
        return {}


def main() -> int:
    text = (ROOT / "template.yaml").read_text()
    # The translator wants an S3 CodeUri; `sam build` puts one there. Nothing else is altered.
    template = yaml_parse(re.sub(r"CodeUri: \.\n", "CodeUri: s3://bucket/key\n", text))
    output = transform(template, {"AWS::Region": "ap-northeast-1"}, NoManagedPolicies())
    apis = [r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    if len(apis) != 1:
        print(f"expected one HTTP API, found {len(apis)}")
        return 1
    paths = apis[0]["Properties"]["Body"]["paths"]
    routes = {}
    for path, item in paths.items():
        for method, operation in item.items():
            uri = operation["x-amazon-apigateway-integration"]["uri"]
            function = uri["Fn::Sub"].split("${")[-1].split(".")[0].split("}")[0]
            # Routes invoke the function's `live` alias (AutoPublishAlias): the function behind it.
            function = function.removesuffix("Aliaslive")
            routes[path] = function
            if method != "x-amazon-apigateway-any-method":
                print(f"{path}: expected ANY, got {method}")
                return 1
    bad = [p for p in routes if p.endswith("/") and p != "/"]
    if bad or routes != EXPECTED_ROUTES:
        print(f"routes differ from the model's: {routes} (ending in '/': {bad})")
        return 1
    # 3. Each group's own throttling reaches the stage SAM generates, under the route's exact key.
    stages = [r for r in output["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    route_settings = stages[0]["Properties"].get("RouteSettings", {}) if len(stages) == 1 else {}
    unthrottled = [p for p in EXPECTED_ROUTES if p != "/$default" and f"ANY {p}" not in route_settings]
    if unthrottled:
        print(f"routes without their own throttling on the stage: {unthrottled}")
        return 1
    print(f"SAM translation: {len(routes)} routes, {len(output['Resources'])} resources, "
          f"{len(route_settings)} route groups throttled on their own")

    from samcli.commands.deploy.auth_utils import auth_per_resource
    from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider

    stacks, _ = SamLocalStackProvider.get_stacks(str(ROOT / "template.yaml"))
    questions = [name for name, has_auth in auth_per_resource(stacks) if not has_auth]
    if questions:
        print(f"sam deploy --guided would ask about authentication for: {questions}")
        return 1
    print("sam deploy --guided: no per-route authentication questions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
