"""Shared helpers for the end-to-end tests: they drive the real glasswatch binary."""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import uuid

TENANT = "3d29e181-4b4e-4710-8621-280aad0bc235"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


class Workdir:
    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="glasswatch-e2e-")

    def file(self, name, text, mode=0o600):
        p = os.path.join(self.path, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def close(self):
        shutil.rmtree(self.path, ignore_errors=True)


def guid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)


def signin_record(rng, user_id, upn, category="SignInLogs", error=0, when="2025-11-03T14:22:07.4403211+00:00"):
    props = {
        "id": guid(rng), "createdDateTime": when, "userDisplayName": "User", "userPrincipalName": upn,
        "userId": user_id, "appId": guid(rng), "appDisplayName": "Azure Portal", "ipAddress": "203.0.113.%d" % rng.randrange(1, 250),
        "status": {"errorCode": error} if error == 0 else {"errorCode": error, "failureReason": "Invalid username or password."},
        "clientAppUsed": "Browser", "userAgent": "Mozilla/5.0", "correlationId": guid(rng),
        "conditionalAccessStatus": "notApplied",
        "appliedConditionalAccessPolicies": [{"id": guid(rng), "displayName": "Require MFA", "result": "notApplied"}],
        "isInteractive": category == "SignInLogs", "location": {"city": "Oslo", "countryOrRegion": "NO"},
    }
    return {"time": when.replace("+00:00", "Z"), "resourceId": "/tenants/%s/providers/Microsoft.aadiam" % TENANT,
            "operationName": "Sign-in activity", "category": category, "tenantId": TENANT,
            "resultType": str(error), "Level": 4, "properties": props}


def audit_record(rng, actor_id, target_id, activity="Update user", when="2025-11-03T14:25:00+00:00", extra_details=None):
    corr = guid(rng)
    props = {
        "id": "Directory_%s_X_%d" % (corr, rng.getrandbits(30)), "category": "UserManagement", "correlationId": corr,
        "result": "success", "activityDisplayName": activity, "activityDateTime": when, "loggedByService": "Core Directory",
        "operationType": "Update", "initiatedBy": {"user": {"id": actor_id, "userPrincipalName": "admin@contoso.example"}},
        "targetResources": [{"id": target_id, "type": "User", "modifiedProperties": []}],
        "additionalDetails": extra_details or [],
    }
    return {"time": when.replace("+00:00", "Z"), "category": "AuditLogs", "tenantId": TENANT, "Level": 4,
            "operationName": activity, "properties": props}
