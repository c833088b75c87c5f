#!/usr/bin/env python3
"""gen_stream.py: a reproducible synthetic Entra ID log stream for glasswatch's benchmarks, the
Event Hub lab backlog and the fuzz seeds. Python 3 standard library only.

Output
  One Event Hub message body per line, {"records":[...]} with --batch-min..--batch-max records,
  as Azure Monitor diagnostic settings deliver them; with --per-record, one bare record per line.
  Every record is a diagnostic-settings record (time, resourceId, category, tenantId, ...,
  properties) of a single tenant, the categories in about the proportions a tenant streams them
  (non-interactive user sign-ins are half of everything), 0.8 to 12 KB each, 5 KB on average.

Watched records and decoys
  --match-rate of the records concern a GUID of --watchlist where glasswatch raises an alert:
  properties.userId of a SignInLogs or NonInteractiveUserSignInLogs record, properties.initiatedBy
  .user.id or a properties.targetResources[].id of an AuditLogs record. --upper-frac of them
  spell the GUID in capitals, --escape-frac write its hyphens as the JSON escape \\u002d (the
  same string once decoded); the others are lower case. --decoy-rate of the records carry a
  watched GUID where glasswatch must stay quiet: the id of a Conditional Access policy in a
  sign-in's appliedConditionalAccessPolicies, an audit modifiedProperties newValue, an audit
  additionalDetails value (a policy id is in capitals half the time).

  --truth FILE gets the header row "kind record_properties_id category field variant
  watched_guid" and one row per such record, tab-separated: kind "match" or "decoy", the
  record's properties.id and category, the field that holds the GUID (userId,
  initiatedBy.user.id, targetResources[].id; appliedConditionalAccessPolicies[].id,
  targetResources[].modifiedProperties[].newValue, additionalDetails[].value), how it is spelled
  there (lower, upper, escaped) and the watched GUID in lower case.

Speed
  Records are not serialised one at a time. Each category keeps a pool of record skeletons,
  JSON rendered once with named holes for what every record must have of its own (properties.id,
  correlation and request ids, timestamps, user, IP address); a record is one %-substitution.
  A skeleton is replaced now and then, so apps, devices, policies and places keep changing, and
  no two records share an id. A record with a decoy gets a skeleton of its own.

The watchlist file is created (--watch-count GUIDs, one a line) when it does not exist. The
same arguments and watchlist give the same bytes.

  gen_stream.py --size-mb 1000 --seed 1 --watchlist watch.txt --out stream.ndjson \\
      --truth stream.truth.tsv --stats
"""
import argparse
import base64
import bisect
import json
import os
import random
import re
import sys
import time
import unicodedata

# ---------------------------------------------------------------- the tenant's vocabulary

# Share of each diagnostic category, per mille.
CATEGORY_SHARE = (
    ("NonInteractiveUserSignInLogs", 520),
    ("SignInLogs", 140),
    ("AuditLogs", 140),
    ("ServicePrincipalSignInLogs", 130),
    ("ManagedIdentitySignInLogs", 50),
    ("ProvisioningLogs", 10),
    ("RiskyUsers", 5),
    ("UserRiskEvents", 5),
)
USER_SIGNINS = ("SignInLogs", "NonInteractiveUserSignInLogs")

GIVEN_NAMES = (
    "Adele", "Bruno", "Carmen", "Dmitri", "Eilidh", "Farah", "Gustavo", "Hana", "Ingrid", "Jonas",
    "Kemal", "Leilani", "Malik", "Nadia", "Oskar", "Pilar", "Quentin", "Rania", "Stefan", "Tamsin",
    "Umar", "Valentina", "Wiktor", "Ximena", "Yusuf", "Zofia", "Aoife", "Beatriz", "Chidi", "Dagny",
    "Émile", "Göran", "Hélène", "Ilse", "Joaquín", "Kåre", "Ludmila", "Mónica", "Niamh", "Ørjan",
    "Priyanka", "Rafał", "Søren", "Thảo", "Ülkü", "Vũ", "Wen", "Ye-jin",
)
FAMILY_NAMES = (
    "Vance", "Diaz", "Okonkwo", "Lindqvist", "Haddad", "Moreau", "Kovačević", "Nguyen", "Fitzgerald",
    "Tanaka", "Schmidt", "Rossi", "Kaur", "Mbeki", "O'Connor", "van der Berg", "Andersen", "Silva",
    "Popescu", "Horvath", "Ibrahim", "Jankowski", "Kowalczyk", "Larsen", "Mendoza", "Novotná",
    "Petrović", "Quispe", "Rahman", "Sato", "Thorsen", "Uribe", "Virtanen", "Weiß", "Yilmaz",
    "Zhang", "Abara", "Brennan", "Castellanos", "Dubois", "Eriksen", "Fischer", "Gallagher",
)
MAIL_DOMAINS = ("contoso.example", "contoso.onmicrosoft.com", "eu.contoso.example", "woodgrove.example")

CLIENT_APPS = (
    "Microsoft Teams", "Microsoft Outlook", "Office 365 Exchange Online", "Azure Portal",
    "Microsoft 365 Copilot", "OneDrive SyncEngine", "Microsoft Authentication Broker",
    "Windows Sign In", "Microsoft Edge", "My Apps", "My Sign-Ins", "Microsoft Intune Company Portal",
    "Microsoft Azure CLI", "Azure Virtual Desktop Client", "Visual Studio", "Power Apps",
    "Microsoft To-Do", "Microsoft Whiteboard Client", "SharePoint Online Web Client Extensibility",
    "Microsoft Planner", "Woodgrove Timesheets", "Contoso Travel Desk", "Contoso Wiki", "ServiceDesk Pro",
)
RESOURCES = (
    "Microsoft Graph", "Office 365 Exchange Online", "Office 365 SharePoint Online",
    "Windows Azure Service Management API", "Microsoft Teams Services", "Azure Key Vault",
    "Microsoft Intune Enrollment", "Windows Azure Active Directory", "Microsoft Rights Management Services",
    "Azure Storage", "Power BI Service", "Device Registration Service", "Microsoft Substrate Management",
)
SERVICE_KINDS = ("etl", "deploy", "backup", "scanner", "sync", "report", "gateway", "alerts", "billing", "hr-feed")
PLACES = (  # city, state, country, latitude, longitude
    ("Seattle", "Washington", "US", 47.606, -122.332), ("Chicago", "Illinois", "US", 41.878, -87.630),
    ("Austin", "Texas", "US", 30.267, -97.743), ("Montréal", "Quebec", "CA", 45.502, -73.567),
    ("Dublin", "Dublin", "IE", 53.350, -6.260), ("Manchester", "England", "GB", 53.481, -2.242),
    ("Lyon", "Auvergne-Rhone-Alpes", "FR", 45.764, 4.836), ("München", "Bayern", "DE", 48.137, 11.575),
    ("Kraków", "Malopolskie", "PL", 50.065, 19.945), ("Oslo", "Oslo", "NO", 59.913, 10.752),
    ("Lagos", "Lagos", "NG", 6.455, 3.394), ("Pune", "Maharashtra", "IN", 18.520, 73.857),
    ("Osaka", "Osaka", "JP", 34.694, 135.502), ("Melbourne", "Victoria", "AU", -37.814, 144.963),
    ("Bogotá", "Bogota D.C.", "CO", 4.711, -74.072), ("Ciudad de México", "Ciudad de Mexico", "MX", 19.433, -99.133),
)
AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Teams 24124.2311.2911.3341; Pro)",
    "Windows-AzureAD-Authentication-Provider/1.0",
    "MSAL.Python/1.28.0 Python/3.11.4 (Linux-6.5.0-azure-x86_64-with-glibc2.35)",
    "azsdk-net-Identity/1.11.4 (.NET 8.0.6; Microsoft Windows 10.0.22631)",
    "Outlook-iOS/4.2423.0",
)
SYSTEMS = ("Windows10", "Windows 11", "MacOs", "Ios", "Android", "Linux", "")
BROWSERS = ("Edge 126.0.2592", "Chrome 126.0.0", "Safari 17.5", "Firefox 127.0", "Mobile Safari 17.5",
            "Rich Client 5.2.3.0", "IE 7.0", "")
JOIN_TYPES = ("Azure AD joined", "Hybrid Azure AD joined", "Azure AD registered", "")
LEGACY_CLIENTS = ("Exchange ActiveSync", "IMAP4", "POP3", "Authenticated SMTP", "Other clients", "Browser")
FAILURES = (
    (50126, "Error validating credentials due to invalid username or password."),
    (50074, "Strong Authentication is required."),
    (50076, "Due to a configuration change made by your administrator, or because you moved to a new location, "
            "you must use multi-factor authentication to access."),
    (50140, "This error occurred due to 'Keep me signed in' interrupt when the user was signing in."),
    (53003, "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance."),
    (50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed."),
    (70043, "The refresh token has expired or is invalid due to sign-in frequency checks by conditional access."),
    (500121, "Authentication failed during strong authentication request."),
)
SP_FAILURES = (
    (7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value."),
    (7000222, "The provided client secret keys for app are expired."),
    (700027, "Client assertion failed signature validation."),
)
CA_OUTCOMES = ("success", "failure", "notApplied", "notEnabled", "reportOnlySuccess", "reportOnlyNotApplied",
               "reportOnlyFailure")
CA_GRANTS = (["Mfa"], ["Block"], ["RequireCompliantDevice"], ["Mfa", "RequireCompliantDevice"],
             ["RequireDomainJoinedDevice", "RequireCompliantDevice"], ["RequireApprovedApp"],
             ["PasswordChange", "Mfa"], [])
CA_SESSIONS = ([], [], [], ["SignInFrequency"], ["PersistentBrowserSessionMode"], ["CloudAppSecurity"],
               ["SignInFrequency", "PersistentBrowserSessionMode"])
CA_PURPOSES = ("MFA for all users", "Block legacy authentication", "Compliant device for Office 365",
               "Admins: phishing-resistant MFA", "Block high sign-in risk", "Guests: terms of use and MFA",
               "Sign-in frequency 8h on unmanaged devices", "Block countries outside allow list",
               "Require app protection on iOS and Android", "Azure management: MFA",
               "Workload identities: trusted locations only", "High user risk: password change")
CA_CONDITIONS = ("application", "users", "platform", "location", "clientType", "signInRisk", "userRisk",
                 "devices", "authenticationFlows")
METHODS = ("Password", "Previously satisfied", "Mobile app notification", "Passkey (Microsoft Authenticator)",
           "Windows Hello for Business", "FIDO2 security key", "OATH verification code", "Text message",
           "Temporary Access Pass")
METHOD_RESULTS = ("Correct password", "MFA requirement satisfied by claim in the token", "MFA successfully completed",
                  "First factor requirement satisfied by claim in the token", "Authentication in progress",
                  "User did not pass the MFA challenge (non interactive)")
PROCESSING_KEYS = (
    ("Legacy TLS (TLS 1.0, 1.1, 3DES)", ("False",)),
    ("Is CAE Token", ("True", "False")),
    ("Oauth Scope Info", ('["openid","profile","offline_access","User.Read","Mail.ReadWrite","Calendars.Read"]',
                          '["Directory.Read.All","AuditLog.Read.All"]', '[]')),
    ("Root Key Type", ("Unknown", "TPM", "Software")),
    ("Is Cloud PRT Authenticated", ("True", "False")),
    ("Request Type", ("MSAL", "OAuth2:Token", "OAuth2:Authorize", "Windows:PRT")),
    ("Login Hint Present", ("True", "False")),
    ("Secure Channel", ("True",)),
    ("Token Protection - Sign In Session", ("None", "Bound")),
    ("Azure AD App Authentication Library", ("Family: MSAL Library: MSAL.Python 1.28.0 Platform: Python",
                                             "Family: MSAL Library: MSAL.NET 4.61.3.0 Platform: .NET", "")),
)
# (activity, audit category, operationType, what else the change touches, service)
AUDIT_ACTIVITIES = (
    ("Add member to group", "GroupManagement", "Assign", "Group", "Core Directory"),
    ("Remove member from group", "GroupManagement", "Unassign", "Group", "Core Directory"),
    ("Add owner to group", "GroupManagement", "Assign", "Group", "Core Directory"),
    ("Add member to role", "RoleManagement", "Assign", "Role", "Core Directory"),
    ("Add eligible member to role in PIM completed (permanent)", "RoleManagement", "Assign", "Role", "PIM"),
    ("Add member to role completed (PIM activation)", "RoleManagement", "Assign", "Role", "PIM"),
    ("Update user", "UserManagement", "Update", None, "Core Directory"),
    ("Add user", "UserManagement", "Add", None, "Core Directory"),
    ("Disable account", "UserManagement", "Update", None, "Core Directory"),
    ("Reset password (by admin)", "UserManagement", "Update", None, "Core Directory"),
    ("Change user password", "UserManagement", "Update", None, "Self-service Password Management"),
    ("User registered security info", "UserManagement", "Add", None, "Authentication Methods"),
    ("Admin registered security info", "UserManagement", "Add", None, "Authentication Methods"),
    ("Update StsRefreshTokenValidFrom Timestamp", "UserManagement", "Update", None, "Core Directory"),
    ("Add app role assignment grant to user", "ApplicationManagement", "Assign", "ServicePrincipal", "Core Directory"),
    ("Add registered owner to device", "Device", "Assign", "Device", "Core Directory"),
    ("Add registered users to device", "Device", "Assign", "Device", "Core Directory"),
)
ROLE_NAMES = ("Global Administrator", "Privileged Role Administrator", "User Administrator",
              "Helpdesk Administrator", "Security Reader", "Exchange Administrator", "Application Administrator",
              "Billing Administrator")
CHANGED_PROPERTIES = ("AccountEnabled", "DisplayName", "Department", "JobTitle", "UsageLocation",
                      "StrongAuthenticationMethod", "StsRefreshTokensValidFrom", "AssignedLicense", "Group.DisplayName",
                      "Role.DisplayName", "Role.TemplateId", "Included Updated Properties", "LastDirSyncTime",
                      "TargetId.UserType")
DETAIL_KEYS = ("User-Agent", "AppId", "ActorType", "MethodsRegistered", "GroupType", "RoleDefinitionOriginType")

# ---------------------------------------------------------------- ids, addresses, clock

AGENTS_JSON = [json.dumps(a) for a in AGENTS]

_VERSION_MASK = ~((0xF << 76) | (0x3 << 62))
_VERSION_BITS = (0x4 << 76) | (0x2 << 62)
_BASE36 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def new_guid(bits):
    """A random (version 4) GUID, lower case, from `bits` = rng.getrandbits."""
    h = "%032x" % (bits(128) & _VERSION_MASK | _VERSION_BITS)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def new_address(rng):
    x = rng.getrandbits(40)
    if x & 0xFF < 30:  # about one in nine over IPv6
        return "2a02:%x:%x:%x::%x" % ((x >> 8) & 0xFFF, (x >> 20) & 0xFFFF, rng.getrandbits(16), rng.getrandbits(12))
    return "%d.%d.%d.%d" % (1 + (x >> 32) % 223, (x >> 24) & 255, (x >> 16) & 255, 1 + ((x >> 8) & 255) % 254)


def q(text):
    """JSON text of a string known to need no escaping (GUIDs, timestamps, addresses)."""
    return '"' + text + '"'


def js(value):
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class Clock:
    """Event time in 100 ns ticks; a few milliseconds pass between two records. Renders the
    record `time` (Z form) and the properties timestamps (+00:00 form), 7 fractional digits."""

    def __init__(self, start_s):
        self.ticks = start_s * 10_000_000
        self._second = None
        self._head = ""

    def tick(self, rng):
        self.ticks += 5_000 + rng.getrandbits(17)  # 0.5 to 13.6 ms

    def stamps(self):
        second, frac = divmod(self.ticks, 10_000_000)
        if second != self._second:
            self._second = second
            self._head = time.strftime('"%Y-%m-%dT%H:%M:%S.', time.gmtime(second))
        f = "%07d" % frac
        return self._head + f + 'Z"', self._head + f + '+00:00"'


# ---------------------------------------------------------------- skeletons

_HOLE_RE = re.compile('"\ue000([a-z_]+)\ue001"')


def hole(name):
    """A placeholder for a per-record value: in the rendered skeleton it becomes %(name)s and
    takes the value's JSON text (quotes included, or a whole object)."""
    return "\ue000" + name + "\ue001"


def skeleton(record):
    return _HOLE_RE.sub(r"%(\1)s", js(record).replace("%", "%%"))


# ---------------------------------------------------------------- the tenant

class Tenant:
    """Everything records refer to: users, apps, service principals, managed identities,
    Conditional Access policies, groups, roles, devices. Drawn once from the seed."""

    def __init__(self, rng, n_users):
        bits = rng.getrandbits
        self.id = new_guid(bits)
        self.partners = [new_guid(bits) for _ in range(4)]  # home tenants of guests
        self._names = {}  # (given, family) -> (UPN local part, display name as JSON)
        self.users = [self._user(rng) for _ in range(max(1, n_users))]
        self.apps = [(new_guid(bits), name) for name in CLIENT_APPS]
        self.apps += [(new_guid(bits), "LOB app %03d" % k) for k in range(80)]
        self.resources = [(new_guid(bits), name, new_guid(bits)) for name in RESOURCES]
        self.service_principals = [
            {"id": new_guid(bits), "appId": new_guid(bits), "name": "svc-%s-%02d" % (rng.choice(SERVICE_KINDS), k)}
            for k in range(250)]
        self.identities = [
            {"id": new_guid(bits), "appId": new_guid(bits),
             "name": "vm-%s-%03d" % (rng.choice(("web", "db", "batch", "build")), k),
             "resource": "/subscriptions/%s/resourcegroups/rg-%s/providers/Microsoft.Compute/virtualMachines/vm-%03d"
                         % (new_guid(bits), rng.choice(("prod", "stage", "shared", "data")), k),
             "type": rng.choice(("systemAssigned", "userAssigned"))}
            for k in range(50)]
        self.policies = [self._policy(rng, k) for k in range(24)]
        self.groups = [(new_guid(bits), "%s-%s-%d" % (rng.choice(("sg", "m365", "dl")),
                                                      rng.choice(("finance", "eng", "sales", "legal", "it", "ops")), k))
                       for k in range(400)]
        self.roles = [(new_guid(bits), name) for name in ROLE_NAMES]
        self.devices = [(new_guid(bits), "%s-%05d" % (rng.choice(("LT", "DT", "VM", "KIOSK")), k),
                         rng.choice(SYSTEMS[:6]), rng.choice(JOIN_TYPES)) for k in range(2500)]
        # Initiators of audit changes that are applications, ready to drop into initiatedBy.
        self.app_initiators = [(js({"app": {"appId": sp["appId"], "displayName": sp["name"],
                                            "servicePrincipalId": sp["id"], "servicePrincipalName": None}}),
                                js(sp["name"])) for sp in self.service_principals[:40]]
        self.app_initiators.append((js({"app": {"appId": "00000003-0000-0000-c000-000000000000",
                                                "displayName": "Microsoft Graph", "servicePrincipalId": new_guid(bits),
                                                "servicePrincipalName": None}}), js("Microsoft Graph")))

    def _user(self, rng):
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        local, display = self._names.get((given, family), (None, None))
        if local is None:
            folded = unicodedata.normalize("NFKD", "%s.%s" % (given, family)).encode("ascii", "ignore").decode()
            local, display = re.sub(r"[^a-z0-9.]", "", folded.lower()), js(given + " " + family)
            self._names[(given, family)] = local, display
        upn = "%s%s@%s" % (local, rng.randrange(100) if rng.random() < 0.3 else "", rng.choice(MAIL_DOMAINS))
        guest = rng.random() < 0.05
        if guest:
            upn = upn.replace("@", "_") + "#EXT#@contoso.onmicrosoft.com"
        # The per-record values of a user, as JSON text: dropped into the skeleton holes.
        return {"uid": q(new_guid(rng.getrandbits)), "upn": js(upn), "udn": display,
                "utype": '"Guest"' if guest else '"Member"',
                "cross": '"b2bCollaboration"' if guest else '"none"',
                "home": q(rng.choice(self.partners)) if guest else q(self.id)}

    def _policy(self, rng, k):
        p = {"id": new_guid(rng.getrandbits),
             "displayName": "%s%02d - %s" % (rng.choice(("CA", "GLB-", "PILOT-")), k, rng.choice(CA_PURPOSES)),
             "grant": rng.choice(CA_GRANTS), "session": rng.choice(CA_SESSIONS)}
        return p

    def pick_user(self, rng):
        # A handful of busy accounts (service desks, shared mailboxes), a long tail of the rest.
        return self.users[int(len(self.users) * rng.random() ** 2.5)]


# ---------------------------------------------------------------- record shapes

class Shapes:
    """Builds one record of a category as a dict whose per-record fields are holes."""

    def __init__(self, rng, tenant):
        self.rng = rng
        self.t = tenant
        self.build = {
            "SignInLogs": lambda: self.user_signin(True),
            "NonInteractiveUserSignInLogs": lambda: self.user_signin(False),
            "ServicePrincipalSignInLogs": lambda: self.workload_signin(False),
            "ManagedIdentitySignInLogs": lambda: self.workload_signin(True),
            "AuditLogs": self.audit,
            "ProvisioningLogs": self.provisioning,
            "RiskyUsers": lambda: self.risk("RiskyUsers"),
            "UserRiskEvents": lambda: self.risk("UserRiskEvents"),
        }

    def envelope(self, category, operation, result_type, description, identity, location, props):
        rec = {"time": hole("time"), "resourceId": "/tenants/%s/providers/Microsoft.aadiam" % self.t.id,
               "operationName": operation, "operationVersion": "1.0", "category": category, "tenantId": self.t.id}
        if result_type is not None:
            rec["resultType"] = result_type
        rec["resultSignature"] = "None"
        if description:
            rec["resultDescription"] = description
        rec.update({"durationMs": 0, "callerIpAddress": hole("ip" if category != "AuditLogs" else "cip"),
                    "correlationId": hole("corr"), "identity": identity, "Level": 4})
        if location:
            rec["location"] = location
        rec["properties"] = props
        return rec

    def place(self):
        r = self.rng
        city, state, country, lat, lon = r.choice(PLACES)
        return {"city": city, "state": state, "countryOrRegion": country,
                "geoCoordinates": {"latitude": round(lat + r.uniform(-0.15, 0.15), 4),
                                   "longitude": round(lon + r.uniform(-0.15, 0.15), 4)}}

    def policies(self, lo, hi):
        r = self.rng
        out = []
        for p in r.sample(self.t.policies, r.randint(lo, hi)):
            outcome = r.choice(CA_OUTCOMES)
            satisfied = 0 if outcome in ("notApplied", "reportOnlyNotApplied") else r.choice((1, 3, 7, 11, 35))
            entry = {"id": p["id"], "displayName": p["displayName"], "enforcedGrantControls": p["grant"],
                     "enforcedSessionControls": p["session"], "result": outcome, "conditionsSatisfied": satisfied,
                     "conditionsNotSatisfied": r.choice((0, 0, 0, 2, 8, 16))}
            if r.random() < 0.5:
                entry["includeRulesSatisfied"] = [
                    {"conditionalAccessCondition": c,
                     "ruleSatisfied": r.choice(("allApps", "appId", "allUsers", "groupId", "allPlatforms"))}
                    for c in r.sample(CA_CONDITIONS, r.randint(1, 3))]
                entry["excludeRulesSatisfied"] = []
            if r.random() < 0.25:
                entry["authenticationStrength"] = {
                    "authenticationStrengthId": "00000000-0000-0000-0000-000000000004",
                    "displayName": "Phishing-resistant MFA",
                    "authenticationStrengthResult": r.choice(("satisfied", "notSet", "cannotSatisfy"))}
            out.append(entry)
        return out

    def processing(self, lo, hi):
        r = self.rng
        return [{"key": k, "value": r.choice(v)} for k, v in r.sample(PROCESSING_KEYS, r.randint(lo, hi))]

    def user_signin(self, interactive):
        r, t = self.rng, self.t
        app_id, app_name = r.choice(t.apps)
        res_id, res_name, res_sp = r.choice(t.resources)
        code, reason = r.choice(FAILURES) if r.random() < 0.1 else (0, "")
        if r.random() < 0.65:
            dev_id, dev_name, system, join = r.choice(t.devices)
        else:
            dev_id, dev_name, system, join = "", "", r.choice(SYSTEMS), ""
        where = self.place()
        steps = [{"authenticationStepDateTime": hole("when"), "authenticationMethod": r.choice(METHODS),
                  "authenticationMethodDetail": r.choice(("Password in the cloud", "Password Hash Sync", "",
                                                          "+X XXXXXXXX12")),
                  "succeeded": code == 0 or r.random() < 0.5,
                  "authenticationStepResultDetail": r.choice(METHOD_RESULTS),
                  "authenticationStepRequirement": r.choice(("Primary authentication", "Multifactor authentication",
                                                             "")),
                  "StatusSequence": r.choice((0, 0, 1, 50140)), "RequestSequence": r.choice((0, 1, 2))}
                 for _ in range(r.randint(1, 3) if interactive else r.randint(0, 2))]
        props = {
            "id": hole("id"), "createdDateTime": hole("when"),
            "userDisplayName": hole("udn"), "userPrincipalName": hole("upn"), "userId": hole("uid"),
            "appId": app_id, "appDisplayName": app_name, "ipAddress": hole("ip"),
            "status": {"errorCode": code, "failureReason": reason} if code else {"errorCode": 0},
            "clientAppUsed": r.choice(LEGACY_CLIENTS) if r.random() < 0.06 else (
                "Browser" if interactive and r.random() < 0.5 else "Mobile Apps and Desktop clients"),
            "userAgent": hole("agent"),
            "deviceDetail": {"deviceId": dev_id, "displayName": dev_name, "operatingSystem": system,
                             "browser": r.choice(BROWSERS), "isCompliant": bool(dev_id) and r.random() < 0.85,
                             "isManaged": bool(dev_id), "trustType": join},
            "location": where,
            "correlationId": hole("corr"),
            "conditionalAccessStatus": "failure" if code == 53003 else r.choice(("success", "success", "notApplied")),
            "appliedConditionalAccessPolicies": self.policies(5, 16) if interactive else self.policies(2, 10),
            "authenticationContextClassReferences": [],
            "originalRequestId": hole("req"),
            "isInteractive": interactive,
            "tokenIssuerName": "", "tokenIssuerType": "AzureAD",
            "authenticationProcessingDetails": self.processing(2, 7),
            "networkLocationDetails": ([{"networkType": "namedNetwork",
                                         "networkNames": [r.choice(("Head office", "VPN egress", "Branch offices"))]}]
                                       if r.random() < 0.35 else []),
            "processingTimeInMilliseconds": hole("ms"),
            "riskDetail": "none", "riskLevelAggregated": "none",
            "riskLevelDuringSignIn": r.choice(("none", "none", "none", "low", "medium")),
            "riskState": "none", "riskEventTypes": [], "riskEventTypes_v2": [],
            "resourceDisplayName": res_name, "resourceId": res_id, "resourceServicePrincipalId": res_sp,
            "resourceTenantId": self.t.id, "homeTenantId": hole("home"), "homeTenantName": "",
            "authenticationDetails": steps,
            "authenticationRequirementPolicies": ([{"requirementProvider": "multiConditionalAccess",
                                                    "detail": "Conditional Access"}] if r.random() < 0.4 else []),
            "authenticationRequirement": r.choice(("singleFactorAuthentication", "multiFactorAuthentication")),
            "signInIdentifier": hole("upn") if interactive else "",
            "servicePrincipalId": "", "userType": hole("utype"),
            "flaggedForReview": False, "isTenantRestricted": False,
            "autonomousSystemNumber": r.choice((8075, 3320, 7018, 2856, 5089, 12322, 4766, 16509)),
            "crossTenantAccessType": hole("cross"),
            "privateLinkDetails": {}, "ssoExtensionVersion": "",
            "uniqueTokenIdentifier": hole("token"),
            "incomingTokenType": "none" if interactive else r.choice(("refreshToken", "primaryRefreshToken", "none")),
            "authenticationProtocol": r.choice(("none", "none", "none", "deviceCode", "ropc")),
            "sessionId": hole("session"),
            "conditionalAccessAudiences": [res_id] + ([app_id] if r.random() < 0.4 else []),
            "tokenProtectionStatusDetails": {"signInSessionStatus": "unbound", "signInSessionStatusCode": 1002},
            "signInEventTypes": ["interactiveUser" if interactive else "nonInteractiveUser"],
        }
        if r.random() < 0.35:
            props["mfaDetail"] = {"authMethod": r.choice(METHODS[2:]), "authDetail": None}
        return self.envelope("SignInLogs" if interactive else "NonInteractiveUserSignInLogs", "Sign-in activity",
                             str(code), reason, hole("udn"), where["countryOrRegion"], props)

    def workload_signin(self, managed):
        r, t = self.rng, self.t
        who = r.choice(t.identities if managed else t.service_principals)
        res_id, res_name, res_sp = r.choice(t.resources)
        code, reason = r.choice(SP_FAILURES) if not managed and r.random() < 0.04 else (0, "")
        where = self.place()
        props = {
            "id": hole("id"), "createdDateTime": hole("when"),
            "userId": None, "appId": who["appId"], "appDisplayName": who["name"], "ipAddress": hole("ip"),
            "status": {"errorCode": code, "failureReason": reason} if code else {"errorCode": 0},
            "location": where, "correlationId": hole("corr"),
            "conditionalAccessStatus": "notApplied",
            "appliedConditionalAccessPolicies": [] if managed else self.policies(0, 5),
            "isInteractive": False, "tokenIssuerType": "AzureAD",
            "authenticationProcessingDetails": self.processing(1, 4),
            "networkLocationDetails": [], "processingTimeInMilliseconds": hole("ms"),
            "riskDetail": "none", "riskLevelAggregated": "none", "riskLevelDuringSignIn": "none", "riskState": "none",
            "resourceDisplayName": res_name, "resourceId": res_id, "resourceServicePrincipalId": res_sp,
            "resourceTenantId": t.id, "servicePrincipalName": who["name"], "servicePrincipalId": who["id"],
            "flaggedForReview": False, "isTenantRestricted": False, "crossTenantAccessType": "none",
            "uniqueTokenIdentifier": hole("token"), "incomingTokenType": "none", "authenticationProtocol": "none",
            "appOwnerTenantId": t.id, "resourceOwnerTenantId": r.choice((t.id, "f8cdef31-a31e-4b4a-93e4-5f571e91255a")),
            "signInEventTypes": ["managedIdentity" if managed else "servicePrincipal"],
        }
        if managed:
            props["managedServiceIdentity"] = {"msiType": who["type"], "associatedResourceId": who["resource"],
                                               "federatedCredentialId": "", "federatedTokenId": "",
                                               "federatedTokenIssuer": ""}
        else:
            props["clientCredentialType"] = r.choice(("clientSecret", "certificate", "clientAssertion",
                                                      "federatedIdentityCredential"))
            props["servicePrincipalCredentialKeyId"] = new_guid(r.getrandbits)
            props["servicePrincipalCredentialThumbprint"] = ("%040X" % r.getrandbits(160)
                                                             if props["clientCredentialType"] == "certificate" else "")
        category = "ManagedIdentitySignInLogs" if managed else "ServicePrincipalSignInLogs"
        return self.envelope(category, "Sign-in activity", str(code), reason, who["name"], where["countryOrRegion"],
                             props)

    def changed(self, n):
        """`n` modifiedProperties entries; the audit log writes their values as JSON inside strings,
        shaped by the property."""
        r = self.rng
        names = r.choices(CHANGED_PROPERTIES, k=n)
        values = [self.property_value(name) for name in names]
        return [{"displayName": name, "oldValue": None if r.random() < 0.4 else ("[]" if r.random() < 0.5 else value),
                 "newValue": value} for name, value in zip(names, values)]

    def property_value(self, name):
        r = self.rng
        if name == "AccountEnabled":
            return "[%s]" % r.choice(("true", "false"))
        if name in ("StsRefreshTokensValidFrom", "LastDirSyncTime"):
            return '["2024-%02d-%02dT%02d:%02d:%02dZ"]' % (r.randint(1, 12), r.randint(1, 28), r.randrange(24),
                                                          r.randrange(60), r.randrange(60))
        if name == "StrongAuthenticationMethod":
            return js([{"MethodType": m, "Default": k == 0} for k, m in enumerate(r.sample((0, 3, 6, 7), 2))])
        if name == "AssignedLicense":
            return js([{"SkuName": r.choice(("ENTERPRISEPREMIUM", "SPE_E5", "EMS", "AAD_PREMIUM_P2")),
                        "DisabledPlans": [], "SkuId": new_guid(r.getrandbits)}])
        if name == "Role.DisplayName":
            return js(r.choice(ROLE_NAMES))
        if name == "Role.TemplateId":
            return js(new_guid(r.getrandbits))
        if name == "Included Updated Properties":
            return js(", ".join(r.sample(CHANGED_PROPERTIES[:7], 2)))
        if name == "TargetId.UserType":
            return js(r.choice(("Member", "Guest")))
        if name == "UsageLocation":
            return js([r.choice(("US", "GB", "DE", "FR", "IN", "JP", "BR", "PL"))])
        if name == "JobTitle":
            return js([r.choice(("Analyst", "Engineer", "Account Manager", "Nurse", "Contractor", "Team Lead"))])
        if name == "Department":
            return js([r.choice(("Finance", "Engineering", "Sales", "Legal", "Operations", "Research"))])
        if name == "Group.DisplayName":
            return js(r.choice(self.t.groups)[1])
        return js([json.loads(r.choice(self.t.users)["udn"])])  # DisplayName

    def audit(self):
        r, t = self.rng, self.t
        activity, audit_category, operation, also, service = r.choice(AUDIT_ACTIVITIES)
        user_target = {"id": hole("tuid"), "displayName": None, "type": "User", "userPrincipalName": hole("tupn"),
                       "modifiedProperties": self.changed(r.randint(0, 6)), "administrativeUnits": []}
        targets = [user_target]
        if also == "Group":
            gid, gname = r.choice(t.groups)
            targets.append({"id": gid, "displayName": gname, "type": "Group",
                            "modifiedProperties": [{"displayName": "Group.DisplayName", "oldValue": None,
                                                    "newValue": js(gname)}],
                            "groupType": r.choice(("unifiedGroups", "azureAD", "distributionGroups"))})
        elif also == "Role":
            rid, rname = r.choice(t.roles)
            targets.append({"id": rid, "displayName": rname, "type": "Role", "modifiedProperties": []})
        elif also == "ServicePrincipal":
            sp = r.choice(t.service_principals)
            targets.append({"id": sp["id"], "displayName": sp["name"], "type": "ServicePrincipal",
                            "modifiedProperties": []})
        elif also == "Device":
            did, dname, _system, _join = r.choice(t.devices)
            targets.append({"id": did, "displayName": dname, "type": "Device", "modifiedProperties": []})
        if len(targets) > 1 and r.random() < 0.5:
            targets.reverse()
        details = [{"key": k, "value": self.detail(k)} for k in r.sample(DETAIL_KEYS, r.randint(1, 4))]
        props = {"id": hole("id"), "category": audit_category, "correlationId": hole("corr"),
                 "result": "success" if r.random() < 0.96 else "failure", "resultReason": "",
                 "activityDisplayName": activity, "activityDateTime": hole("when"), "loggedByService": service,
                 "operationType": operation, "userAgent": None, "initiatedBy": hole("init"),
                 "targetResources": targets, "additionalDetails": details}
        return self.envelope("AuditLogs", activity, None, "", hole("actor"), None, props)

    def detail(self, key):
        r = self.rng
        if key == "User-Agent":
            return r.choice(AGENTS)
        if key == "AppId":
            return r.choice(self.t.apps)[0]
        if key == "ActorType":
            return r.choice(("User", "ServicePrincipal"))
        if key == "MethodsRegistered":
            return r.choice(("PhoneAppNotification, PhoneAppOTP", "Fido2", "Passkey", "Email"))
        if key == "GroupType":
            return r.choice(("Unified", "Security"))
        return r.choice(("Default", "Custom"))

    def provisioning(self):
        r, t = self.rng, self.t
        props = {"id": hole("id"), "activityDateTime": hole("when"),
                 "jobId": "API2AAD.%s.%s" % (new_guid(r.getrandbits).replace("-", ""), t.id),
                 "cycleId": new_guid(r.getrandbits), "changeId": new_guid(r.getrandbits),
                 "provisioningAction": r.choice(("create", "update", "disable", "delete")),
                 "provisioningStatusInfo": {"status": r.choice(("success", "success", "skipped", "failure"))},
                 "provisioningSteps": [{"name": n, "provisioningStepType": n.lower(), "status": "success",
                                        "description": "%s completed" % n}
                                       for n in ("Import", "Scoping", "Matching", "Export")],
                 "servicePrincipal": {"id": t.service_principals[0]["id"], "displayName": "HR inbound provisioning"},
                 "sourceSystem": {"id": new_guid(r.getrandbits), "displayName": "API-driven provisioning"},
                 "targetSystem": {"id": new_guid(r.getrandbits), "displayName": "Microsoft Entra ID"},
                 "sourceIdentity": {"id": "E%06d" % r.randrange(10 ** 6), "displayName": hole("udn"),
                                    "identityType": "Worker"},
                 "targetIdentity": {"id": hole("uid"), "displayName": hole("udn"), "identityType": "User"},
                 "modifiedProperties": self.changed(r.randint(2, 7))}
        return self.envelope("ProvisioningLogs", "Provisioning activity", "0", "", "HR inbound provisioning", None,
                             props)

    def risk(self, category):
        r = self.rng
        level = r.choice(("low", "medium", "high"))
        props = {"id": hole("id"), "userId": hole("uid"), "userDisplayName": hole("udn"),
                 "userPrincipalName": hole("upn"), "riskLevel": level, "riskState": "atRisk", "riskDetail": "none",
                 "riskLastUpdatedDateTime": hole("when"), "isDeleted": False, "isProcessing": False}
        if category == "UserRiskEvents":
            props.update({"riskEventType": r.choice(("unfamiliarFeatures", "anonymizedIPAddress", "impossibleTravel",
                                                     "passwordSpray", "maliciousIPAddress")),
                          "ipAddress": hole("ip"), "location": self.place(), "requestId": hole("req"),
                          "correlationId": hole("corr"), "source": "IdentityProtection",
                          "detectionTimingType": r.choice(("realtime", "offline")), "activity": "signin",
                          "detectedDateTime": hole("when"),
                          "additionalInfo": js([{"Key": "userAgent", "Value": r.choice(AGENTS)}])})
        return self.envelope(category, "Risky user" if category == "RiskyUsers" else "User Risk Detection",
                             None, "", hole("udn"), None, props)


# ---------------------------------------------------------------- the stream

class Stream:
    POOL = 96          # skeletons kept per category
    GROW = 1.0 / 4     # while a pool is not full: chance that a record adds a skeleton to it
    RENEW = 1.0 / 12   # once full: chance that a record is drawn from a brand-new skeleton

    def __init__(self, seed, n_users, watched, opts):
        self.rng = random.Random(seed)
        self.tenant = Tenant(self.rng, n_users)
        self.shapes = Shapes(self.rng, self.tenant)
        self.clock = Clock(1719792000)  # 2024-07-01T00:00:00Z
        self.pools = {c: [] for c, _ in CATEGORY_SHARE}
        self.categories = [c for c, _ in CATEGORY_SHARE]
        total = float(sum(w for _, w in CATEGORY_SHARE))
        acc, self.bounds = 0, []
        for _, w in CATEGORY_SHARE:
            acc += w
            self.bounds.append(acc / total)
        self.watched = watched
        # How a watched account looks where its GUID stands.
        self.watched_people = [(js("Emergency Access %02d" % (k + 1)),
                                js("emergency.access%02d@contoso.onmicrosoft.com" % (k + 1)))
                               for k in range(len(watched))]
        self.o = opts

    # -- helpers --------------------------------------------------------------------------------
    def skeleton_of(self, category):
        pool = self.pools[category]
        r = self.rng
        if not pool or (len(pool) < self.POOL and r.random() < self.GROW):
            s = skeleton(self.shapes.build[category]())
            pool.append(s)
            return s
        if len(pool) == self.POOL and r.random() < self.RENEW:
            s = skeleton(self.shapes.build[category]())
            pool[r.randrange(self.POOL)] = s
            return s
        return pool[r.randrange(len(pool))]

    def values(self, category):
        """The per-record values (JSON text) for a record of `category`, an ordinary one."""
        r = self.rng
        bits = r.getrandbits
        stamp, when = self.clock.stamps()
        corr = new_guid(bits)
        if category == "AuditLogs":
            tag = "".join(_BASE36[(bits(30) >> s) % 36] for s in (0, 6, 12, 18, 24))
            v = {"time": stamp, "when": when, "corr": q(corr), "id": '"Directory_%s_%s_%d"' % (corr, tag, bits(31))}
            target = self.tenant.pick_user(r)
            v["tuid"], v["tupn"] = target["uid"], target["upn"]
            if r.random() < 0.7:
                actor = self.tenant.pick_user(r)
                ip = q(new_address(r)) if r.random() < 0.6 else '""'
                v["init"] = '{"user":{"id":%s,"displayName":null,"userPrincipalName":%s,"ipAddress":%s,"roles":[]}}' % (
                    actor["uid"], actor["upn"], ip)
                v["actor"], v["cip"] = actor["udn"], ip if ip != '""' else '"<null>"'
            else:
                v["init"], v["actor"] = r.choice(self.tenant.app_initiators)
                v["cip"] = '"<null>"'
            return v
        workload = category in ("ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs")
        v = {} if workload else dict(self.tenant.pick_user(r))
        v.update(time=stamp, when=when, corr=q(corr), id=q(new_guid(bits)), ip=q(new_address(r)),
                 req=q(new_guid(bits)), session=q(new_guid(bits)), agent=r.choice(AGENTS_JSON), ms=str(bits(10)),
                 token=q(base64.urlsafe_b64encode(bits(132).to_bytes(17, "little")).decode().rstrip("=")))
        if category == "UserRiskEvents":
            v["id"] = q("%064x" % bits(256))
        return v

    def spell(self, guid):
        """How a watched GUID is written in a matching record: (JSON text, variant)."""
        y = self.rng.random()
        if y < self.o.upper_frac:
            return q(guid.upper()), "upper"
        if y < self.o.upper_frac + self.o.escape_frac:
            return q(guid.replace("-", "\\u002d")), "escaped"
        return q(guid), "lower"

    # -- one record -----------------------------------------------------------------------------
    def record(self):
        """(record JSON text, category, truth row or None)."""
        r = self.rng
        self.clock.tick(r)
        x = r.random()
        category = self.categories[bisect.bisect_right(self.bounds, r.random())]
        if x < self.o.match_rate:
            return self.watched_record(category)
        if x < self.o.match_rate + self.o.decoy_rate:
            return self.decoy_record(category)
        return self.skeleton_of(category) % self.values(category), category, None

    def watched_record(self, category):
        r = self.rng
        k = r.randrange(len(self.watched))
        guid = self.watched[k]
        name, upn = self.watched_people[k]
        text, variant = self.spell(guid)
        if category != "AuditLogs":
            if category not in USER_SIGNINS:
                category = "SignInLogs" if r.random() < 0.3 else "NonInteractiveUserSignInLogs"
            v = self.values(category)
            v.update(uid=text, upn=upn, udn=name, utype='"Member"', cross='"none"', home=q(self.tenant.id))
            field = "userId"
        else:
            v = self.values(category)
            if r.random() < 0.5:
                ip = q(new_address(r))
                v["init"] = '{"user":{"id":%s,"displayName":null,"userPrincipalName":%s,"ipAddress":%s,"roles":[]}}' % (
                    text, upn, ip)
                v["actor"], v["cip"] = name, ip
                field = "initiatedBy.user.id"
            else:
                v["tuid"], v["tupn"] = text, upn
                field = "targetResources[].id"
        rec = self.skeleton_of(category) % v
        return rec, category, ("match", json.loads(v["id"]), category, field, variant, guid)

    def decoy_record(self, category):
        r = self.rng
        guid = self.watched[r.randrange(len(self.watched))]
        variant = "lower"
        # About half the decoys in audit records: their targets are walked, field by field.
        if category != "AuditLogs" and r.random() < 0.45:
            category = "AuditLogs"
        elif category not in USER_SIGNINS and category != "AuditLogs":
            category = "SignInLogs" if r.random() < 0.3 else "NonInteractiveUserSignInLogs"
        rec = self.shapes.build[category]()
        props = rec["properties"]
        if category == "AuditLogs":
            if r.random() < 0.5:
                target = r.choice(props["targetResources"])
                mods = target["modifiedProperties"]
                name = r.choice(("Group.ObjectID", "TargetId.ObjectID", "Role.ObjectID"))
                mods.insert(r.randint(0, len(mods)), {"displayName": name, "oldValue": None, "newValue": js(guid)})
                field = "targetResources[].modifiedProperties[].newValue"
            else:
                details = props["additionalDetails"]
                key = r.choice(("oid", "ObjectId", "TargetObjectId"))
                details.insert(r.randint(0, len(details)), {"key": key, "value": guid})
                field = "additionalDetails[].value"
        else:
            policies = props["appliedConditionalAccessPolicies"]
            policy = r.choice(policies)  # user sign-ins always list at least two
            variant = "upper" if r.random() < 0.5 else "lower"
            policy["id"] = guid.upper() if variant == "upper" else guid
            field = "appliedConditionalAccessPolicies[].id"
        v = self.values(category)
        return skeleton(rec) % v, category, ("decoy", json.loads(v["id"]), category, field, variant, guid)


# ---------------------------------------------------------------- command line

def load_watchlist(path, seed, count):
    if not os.path.exists(path):
        wr = random.Random("glasswatch watchlist %d" % seed)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="ascii") as f:
            f.write("".join(new_guid(wr.getrandbits) + "\n" for _ in range(count)))
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            g = s.strip("{}").lower()
            if not GUID_RE.match(g):
                sys.exit("gen_stream: %s:%d is not a GUID: %s" % (path, n, s))
            out.append(g)
    return out


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="-", help="where to write the stream ('-': standard output)")
    ap.add_argument("--size-mb", type=float, default=200.0,
                    help="stop once this many MB (10^6 bytes) are written; the last line may go beyond")
    ap.add_argument("--seed", type=int, default=1, help="everything random derives from it")
    ap.add_argument("--watchlist", required=True,
                    help="file of watched GUIDs, one a line; written if it does not exist")
    ap.add_argument("--watch-count", type=int, default=10, help="how many GUIDs a new watchlist gets")
    ap.add_argument("--match-rate", type=float, default=1e-5, help="share of records that concern a watched GUID")
    ap.add_argument("--decoy-rate", type=float, default=1e-5,
                    help="share of records that hold a watched GUID in a field that must not match")
    ap.add_argument("--upper-frac", type=float, default=0.2, help="share of the matches spelled in upper case")
    ap.add_argument("--escape-frac", type=float, default=0.1, help="share of the matches with hyphens written \\u002d")
    ap.add_argument("--batch-min", type=int, default=1, help="fewest records in one message body")
    ap.add_argument("--batch-max", type=int, default=50, help="most records in one message body")
    ap.add_argument("--per-record", action="store_true", help='one record a line instead of {"records":[...]} bodies')
    ap.add_argument("--users", type=int, default=20000, help="user accounts in the tenant")
    ap.add_argument("--truth", help="write the expected matches and the decoys here (TSV)")
    ap.add_argument("--stats", action="store_true", help="also print record sizes and the category mix to stderr")
    a = ap.parse_args(argv)
    if not 1 <= a.batch_min <= a.batch_max:
        ap.error("need 1 <= --batch-min <= --batch-max")
    if a.match_rate < 0 or a.decoy_rate < 0 or a.match_rate + a.decoy_rate > 1:
        ap.error("--match-rate and --decoy-rate must be >= 0 and add up to at most 1")
    if a.upper_frac < 0 or a.escape_frac < 0 or a.upper_frac + a.escape_frac > 1:
        ap.error("--upper-frac and --escape-frac must be >= 0 and add up to at most 1")
    return a


def open_out(path, mode):
    if path == "-":
        return sys.stdout.buffer
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return open(path, mode, buffering=1 << 20)


def main(argv=None):
    a = parse_args(argv)
    watched = load_watchlist(a.watchlist, a.seed, a.watch_count)
    if not watched and a.match_rate + a.decoy_rate > 0:
        sys.exit("gen_stream: %s holds no GUID, so there is nothing to match or to use as a decoy" % a.watchlist)
    started = time.monotonic()
    stream = Stream(a.seed, a.users, watched, a)
    out = open_out(a.out, "wb")
    truth = None
    if a.truth:
        truth = open_out(a.truth, "wb")
        truth.write(b"kind\trecord_properties_id\tcategory\tfield\tvariant\twatched_guid\n")

    limit = int(a.size_mb * 1e6)
    written = n_records = n_bodies = n_matches = n_decoys = 0
    sizes = [] if a.stats else None
    per_category = {}
    rng = stream.rng
    while written < limit:
        n = 1 if a.per_record else rng.randint(a.batch_min, a.batch_max)
        recs = []
        for _ in range(n):
            text, category, row = stream.record()
            data = text.encode("utf-8")
            recs.append(data)
            per_category[category] = per_category.get(category, 0) + 1
            if sizes is not None:
                sizes.append(len(data))
            if row:
                if row[0] == "match":
                    n_matches += 1
                else:
                    n_decoys += 1
                if truth:
                    truth.write(("\t".join(row) + "\n").encode("utf-8"))
        line = b"\n".join(recs) + b"\n" if a.per_record else b'{"records":[' + b",".join(recs) + b"]}\n"
        out.write(line)
        written += len(line)
        n_records += n
        n_bodies += 1
    out.flush()
    if out is not sys.stdout.buffer:
        out.close()
    if truth:
        truth.close()

    seconds = max(time.monotonic() - started, 1e-9)
    report = ["gen_stream: %d records in %d %s, %d bytes, %d matches, %d decoys; %.1f s, %.0f MB/s"
              % (n_records, n_bodies, "lines" if a.per_record else "bodies", written, n_matches, n_decoys,
                 seconds, written / 1e6 / seconds)]
    if sizes:
        sizes.sort()

        def pct(p):
            return sizes[min(len(sizes) - 1, int(p / 100.0 * len(sizes)))]
        report.append("record bytes: min %d, p10 %d, median %d, p90 %d, max %d, mean %.0f"
                      % (sizes[0], pct(10), pct(50), pct(90), sizes[-1], sum(sizes) / float(len(sizes))))
        by_share = sorted(per_category.items(), key=lambda kv: (-kv[1], kv[0]))
        report.append("categories: " + ", ".join("%s %.1f%%" % (c, 100.0 * k / n_records) for c, k in by_share))
    print("\n".join(report), file=sys.stderr)


if __name__ == "__main__":
    main()
