// Realistic signIn and directoryAudit records (graph.md §1 and §4), the simulated directory,
// and the small shared utilities the rest of the lab builds on (time formats, randomness,
// base64).
#include "lab/lab_internal.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace glasswatch::lab::detail {

// ---- time -------------------------------------------------------------------------------------

namespace {

constexpr std::int64_t us_per_s = 1000000;

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar, no
// dependence on the process time zone or locale.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil {
    std::int64_t year;
    unsigned month, day, hour, minute, second, weekday;  // weekday 0 = Sunday
    std::int64_t micros;
};

civil to_civil(std::int64_t us) {
    std::int64_t secs = us >= 0 ? us / us_per_s : -((-us + us_per_s - 1) / us_per_s);
    std::int64_t micros = us - secs * us_per_s;
    std::int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    std::int64_t sod = secs - days * 86400;
    civil c{};
    c.weekday = static_cast<unsigned>(((days % 7) + 7 + 4) % 7);  // 1970-01-01 was a Thursday
    std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    c.day = doy - (153 * mp + 2) / 5 + 1;
    c.month = mp < 10 ? mp + 3 : mp - 9;
    c.year = static_cast<std::int64_t>(yoe) + era * 400 + (c.month <= 2);
    c.hour = static_cast<unsigned>(sod / 3600);
    c.minute = static_cast<unsigned>(sod / 60 % 60);
    c.second = static_cast<unsigned>(sod % 60);
    c.micros = micros;
    return c;
}

}  // namespace

std::string iso_time(std::int64_t us, int fraction_digits, bool trim, int extra_tick) {
    civil c = to_civil(us);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02u:%02u:%02u",
                  static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second);
    std::string out = buf;
    if (fraction_digits > 0) {
        char frac[16];
        std::snprintf(frac, sizeof frac, "%06lld%01d", static_cast<long long>(c.micros),
                      extra_tick % 10);
        std::string f(frac, static_cast<std::size_t>(std::min(fraction_digits, 7)));
        if (trim)
            while (!f.empty() && f.back() == '0')
                f.pop_back();
        if (!f.empty()) out += "." + f;
    }
    return out + "Z";
}

std::string aad_timestamp(std::int64_t us) {
    civil c = to_civil(us);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%04lld-%02u-%02u %02u:%02u:%02uZ",
                  static_cast<long long>(c.year), c.month, c.day, c.hour, c.minute, c.second);
    return buf;
}

std::string graph_error_date(std::int64_t us) {
    std::string s = iso_time(us, 0);
    s.pop_back();  // Graph's innerError date has no zone designator
    return s;
}

std::string http_date(std::int64_t us) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    civil c = to_civil(us);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02u:%02u:%02u GMT", days[c.weekday], c.day,
                  months[c.month - 1], static_cast<long long>(c.year), c.hour, c.minute, c.second);
    return buf;
}

std::optional<std::int64_t> parse_iso(std::string_view s) {
    auto digits = [&](std::size_t pos, std::size_t n, unsigned& out) {
        if (pos + n > s.size()) return false;
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (s[i] < '0' || s[i] > '9') return false;
            out = out * 10 + static_cast<unsigned>(s[i] - '0');
        }
        return true;
    };
    unsigned y, mo, d, h, mi, se;
    if (s.size() < 20 || !digits(0, 4, y) || s[4] != '-' || !digits(5, 2, mo) || s[7] != '-' ||
        !digits(8, 2, d) || s[10] != 'T' || !digits(11, 2, h) || s[13] != ':' ||
        !digits(14, 2, mi) || s[16] != ':' || !digits(17, 2, se))
        return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
    std::size_t pos = 19;
    std::int64_t micros = 0;
    if (s[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        std::int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            micros += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == start || pos - start > 7) return std::nullopt;
    }
    if (pos + 1 != s.size() || s[pos] != 'Z') return std::nullopt;
    std::int64_t days = days_from_civil(y, mo, d);
    return ((days * 86400 + h * 3600 + mi * 60 + se) * us_per_s) + micros;
}

// ---- randomness -------------------------------------------------------------------------------

std::uint64_t rng::next() {
    std::uint64_t z = (s_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double rng::uniform() {
    return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0);
}

double rng::uniform(double lo, double hi) {
    return lo + (hi - lo) * uniform();
}

std::size_t rng::below(std::size_t n) {
    return static_cast<std::size_t>(next() % n);
}

double rng::exponential(double rate) {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    return -std::log(1.0 - uniform()) / rate;
}

std::string rng::guid() {
    std::uint64_t a = next(), b = next();
    a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08llx-%04llx-%04llx-%04llx-%012llx",
                  static_cast<unsigned long long>(a >> 32),
                  static_cast<unsigned long long>((a >> 16) & 0xffff),
                  static_cast<unsigned long long>(a & 0xffff),
                  static_cast<unsigned long long>(b >> 48),
                  static_cast<unsigned long long>(b & 0xffffffffffffULL));
    return buf;
}

std::string rng::base64url_bytes(std::size_t n) {
    std::string bytes;
    while (bytes.size() < n) {
        std::uint64_t v = next();
        for (int i = 0; i < 8 && bytes.size() < n; ++i)
            bytes += static_cast<char>((v >> (8 * i)) & 0xff);
    }
    return base64url_encode(bytes);
}

// ---- base64 -----------------------------------------------------------------------------------

namespace {

constexpr char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_value(char c, bool url) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == (url ? '-' : '+')) return 62;
    if (c == (url ? '_' : '/')) return 63;
    return -1;
}

std::optional<std::string> b64_decode(std::string_view text, bool url) {
    if (!url) {
        if (text.size() % 4 != 0) return std::nullopt;
        while (!text.empty() && text.back() == '=')
            text.remove_suffix(1);
    }
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = b64_value(c, url);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return out;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += b64url_chars[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += b64url_chars[(acc << (6 - bits)) & 63];
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    return b64_decode(text, true);
}

std::optional<std::string> base64_decode(std::string_view text) {
    return b64_decode(text, false);
}

// ---- the simulated directory ------------------------------------------------------------------

namespace {

constexpr const char* first_names[] = {
    "Adele",  "Alex",    "Allan",  "Ben",       "Christie", "Debra",  "Diego",   "Emily",
    "Enrico", "Gerhart", "Grady",  "Henrietta", "Irvin",    "Isaiah", "Johanna", "Joni",
    "Lee",    "Lidia",   "Lynne",  "Megan",     "Miriam",   "Nestor", "Patti",   "Pradeep",
    "Raul",   "Sakura",  "Tomasz", "Uma",       "Wei",      "Zainab"};
constexpr const char* last_names[] = {
    "Vance", "Wilber",   "Deyoung", "Walters", "Cline",  "Berger", "Siciliani", "Braun",
    "Rossi", "Moos",     "Archie",  "Mueller", "Sayers", "Lee",    "Lauer",     "Sherman",
    "Gu",    "Holloway", "Robbins", "Bowen",   "Graham", "Wilke",  "Fernandez", "Gupta",
    "Razor", "Tanaka",   "Nowak",   "Okafor",  "Chen",   "Haddad"};

struct place {
    const char* city;
    const char* state;
    const char* country;
    double lat, lon;
    const char* ip_prefix;  // documentation ranges only (RFC 5737)
};
constexpr place places[] = {
    {"Seattle", "Washington", "US", 47.6062, -122.3321, "198.51.100."},
    {"Redmond", "Washington", "US", 47.6740, -122.1215, "198.51.100."},
    {"New York", "New York", "US", 40.7128, -74.0060, "203.0.113."},
    {"London", "England", "GB", 51.5072, -0.1276, "203.0.113."},
    {"Dublin", "Dublin", "IE", 53.3498, -6.2603, "192.0.2."},
    {"Berlin", "Berlin", "DE", 52.5200, 13.4050, "192.0.2."},
    {"Sao Paulo", "Sao Paulo", "BR", -23.5505, -46.6333, "203.0.113."},
    {"Singapore", "Singapore", "SG", 1.3521, 103.8198, "192.0.2."},
};

struct device_kind {
    const char* os;
    const char* browser;
    const char* trust;
    bool managed;
};
constexpr device_kind devices[] = {
    {"Windows10", "Edge 129.0.2792", "Azure AD joined", true},
    {"Windows10", "Chrome 129.0.0", "Azure AD joined", true},
    {"MacOs", "Safari 17.6", "Azure AD registered", false},
    {"Ios 17.6", "Mobile Safari 17.6", "", false},
    {"Android 14", "Chrome Mobile 129.0.6668", "Azure AD registered", false},
};

struct app_info {
    const char* app_id;
    const char* app_name;
    const char* resource_id;
    const char* resource_name;
    const char* client_app_used;
};
constexpr app_info interactive_apps[] = {
    {"c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "Azure Portal", "797f4846-ba00-4fd7-ba43-dac1f8f63013",
     "Windows Azure Service Management API", "Browser"},
    {"d3590ed6-52b3-4102-aeff-aad2292ab01c", "Microsoft Office",
     "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online",
     "Mobile Apps and Desktop clients"},
    {"1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams",
     "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Microsoft Teams Services",
     "Mobile Apps and Desktop clients"},
    {"00000006-0000-0ff1-ce00-000000000000", "Microsoft Office 365 Portal",
     "00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online", "Browser"},
};
constexpr app_info background_apps[] = {
    {"27922004-5251-4030-b22d-91ecd9a37ea4", "Outlook Mobile",
     "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online",
     "Mobile Apps and Desktop clients"},
    {"ab9b8c07-8f02-4f72-87fa-80105867a763", "OneDrive SyncEngine",
     "00000003-0000-0ff1-ce00-000000000000", "Office 365 SharePoint Online",
     "Mobile Apps and Desktop clients"},
    {"29d9ed98-a469-4536-ade2-f981bc1d605e", "Microsoft Authentication Broker",
     "00000003-0000-0000-c000-000000000000", "Microsoft Graph", "Mobile Apps and Desktop clients"},
    {"1fec8e78-bce4-4aaf-ab1b-5451cc387264", "Microsoft Teams",
     "cc15fd57-2c6c-4117-a88c-83b1d56b4bbe", "Microsoft Teams Services",
     "Mobile Apps and Desktop clients"},
};

struct principal {
    const char* app_id;
    const char* sp_id;
    const char* name;
};
constexpr principal service_principals[] = {
    {"6b1d4a0e-4c3b-4c8e-9d62-0f3f1b2a7c11", "a3c5e7f9-1b2d-4f6a-8c0e-2d4f6a8c0e13", "hr-sync"},
    {"0f9e8d7c-6b5a-4a39-8877-665544332211", "11223344-5566-4788-99aa-bbccddeeff00",
     "terraform-ci"},
    {"7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "2d3c4b5a-6f7e-48d9-a0b1-c2d3e4f5a6b7",
     "backup-runner"},
};
constexpr principal managed_identities[] = {
    {"9c8b7a69-5847-4362-8150-ffeeddccbbaa", "e5d4c3b2-a190-4f8e-9d7c-6b5a49382716", "vm-web-01"},
    {"4d5e6f70-8192-43a4-b5c6-d7e8f9a0b1c2", "c2b1a0f9-e8d7-46c5-b4a3-92817f6e5d4c",
     "func-reports"},
};

constexpr const char* graph_sp_id = "3bd81017-899b-434b-a40d-2a9d39623d4e";

person make_person(rng& r, std::string id, std::string upn, std::string display) {
    person p;
    p.id = std::move(id);
    p.upn = std::move(upn);
    p.display_name = std::move(display);
    const place& pl = places[r.below(std::size(places))];
    p.city = pl.city;
    p.state = pl.state;
    p.country = pl.country;
    p.latitude = pl.lat;
    p.longitude = pl.lon;
    p.ip = std::string(pl.ip_prefix) + std::to_string(1 + r.below(254));
    const device_kind& d = devices[r.below(std::size(devices))];
    p.os = d.os;
    p.browser = d.browser;
    if (d.managed) {
        p.device_id = r.guid();
        p.device_name = "CONTOSO-LT-" + std::to_string(1000 + r.below(9000));
    }
    return p;
}

}  // namespace

const person* directory::find(std::string_view id) const {
    if (id == bg1.id) return &bg1;
    if (id == bg2.id) return &bg2;
    if (id == admin.id) return &admin;
    for (const auto& u : users)
        if (u.id == id) return &u;
    return nullptr;
}

directory make_directory(const lab_options& opts) {
    // A stream of its own, so the same seed always yields the same users whatever else the lab
    // draws from its other generators.
    rng r(opts.seed * 0x2545f4914f6cdd1dULL + 17);
    directory d;
    std::string domain = opts.tenant_domain;
    d.bg1 = make_person(r, std::string(ids::bg1), std::string(ids::bg1_upn), "Break Glass 1");
    d.bg2 = make_person(r, std::string(ids::bg2), std::string(ids::bg2_upn), "Break Glass 2");
    d.admin = make_person(r, std::string(ids::admin), std::string(ids::admin_upn), "Bruno Diaz");
    d.admin.device_id = r.guid();
    d.admin.device_name = "CONTOSO-LT-0417";
    std::map<std::string, int> taken;
    for (int i = 0; i < std::max(opts.user_count, 1); ++i) {
        std::string first = r.pick(first_names), last = r.pick(last_names);
        std::string local = lower(first) + "." + lower(last);
        if (int n = taken[local]++; n > 0) local += std::to_string(n + 1);
        d.users.push_back(make_person(r, r.guid(), local + "@" + domain, first + " " + last));
    }
    return d;
}

const char* event_type_name(sign_in_type t) {
    switch (t) {
        case sign_in_type::interactive:
            return "interactiveUser";
        case sign_in_type::non_interactive:
            return "nonInteractiveUser";
        case sign_in_type::service_principal:
            return "servicePrincipal";
        case sign_in_type::managed_identity:
            return "managedIdentity";
    }
    return "interactiveUser";
}

std::optional<sign_in_type> parse_sign_in_type(std::string_view s) {
    if (s == "interactive" || s == "interactiveUser") return sign_in_type::interactive;
    if (s == "nonInteractive" || s == "nonInteractiveUser") return sign_in_type::non_interactive;
    if (s == "servicePrincipal") return sign_in_type::service_principal;
    if (s == "managedIdentity") return sign_in_type::managed_identity;
    return std::nullopt;
}

std::string failure_reason(int error_code) {
    switch (error_code) {
        case 0:
            return "Other.";
        case 50126:
            return "Invalid username or password or Invalid on-premise username or password.";
        case 50053:
            return "Account is locked because user tried to sign in too many times with an "
                   "incorrect user ID or password.";
        case 50057:
            return "User account is disabled. The account has been disabled by an administrator.";
        case 50055:
            return "The password is expired.";
        case 50074:
            return "Strong Authentication is required.";
        case 50076:
            return "Due to a configuration change made by your administrator, or because you moved "
                   "to a new location, you must use multi-factor authentication to access the "
                   "resource.";
        case 50140:
            return "This error occurred due to 'Keep me signed in' interrupt when the user was "
                   "signing-in.";
        case 53003:
            return "Access has been blocked by Conditional Access policies. The access policy does "
                   "not allow token issuance.";
        case 530032:
            return "Blocked by security policy.";
        default:
            return "Other.";
    }
}

// ---- records ----------------------------------------------------------------------------------

namespace {

using nlohmann::json;

// Properties only the beta endpoint returns (graph.md §1.2); v1.0 readers never see them.
constexpr const char* beta_only_sign_in[] = {"signInEventTypes",
                                             "userType",
                                             "authenticationDetails",
                                             "authenticationMethodsUsed",
                                             "authenticationProcessingDetails",
                                             "authenticationProtocol",
                                             "authenticationRequirement",
                                             "authenticationRequirementPolicies",
                                             "authenticationContextClassReferences",
                                             "authenticationAppPolicyEvaluationDetails",
                                             "appTokenProtectionStatus",
                                             "signInTokenProtectionStatus",
                                             "tokenProtectionStatusDetails",
                                             "autonomousSystemNumber",
                                             "azureResourceId",
                                             "clientCredentialType",
                                             "conditionalAccessAudiences",
                                             "crossTenantAccessType",
                                             "federatedCredentialId",
                                             "flaggedForReview",
                                             "globalSecureAccessIpAddress",
                                             "homeTenantName",
                                             "incomingTokenType",
                                             "ipAddressFromResourceProvider",
                                             "isTenantRestricted",
                                             "isThroughGlobalSecureAccess",
                                             "managedServiceIdentity",
                                             "networkLocationDetails",
                                             "originalRequestId",
                                             "originalTransferMethod",
                                             "privateLinkDetails",
                                             "processingTimeInMilliseconds",
                                             "resourceServicePrincipalId",
                                             "servicePrincipalCredentialKeyId",
                                             "servicePrincipalCredentialThumbprint",
                                             "sessionId",
                                             "sessionLifetimePolicies",
                                             "signInIdentifier",
                                             "signInIdentifierType",
                                             "tokenIssuerName",
                                             "tokenIssuerType",
                                             "uniqueTokenIdentifier",
                                             "mfaDetail",
                                             "alternateSignInName",
                                             "appOwnerTenantId",
                                             "resourceOwnerTenantId",
                                             "clientSessionId"};

constexpr const char* user_agents[] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36 Edg/129.0.2792.65",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
};

json ca_policy(const char* id, const char* name, const char* grant, const char* result) {
    return {{"id", id},
            {"displayName", name},
            {"enforcedGrantControls", json::array({grant})},
            {"enforcedSessionControls", json::array()},
            {"result", result}};
}

json geo(double lat, double lon) {
    return {{"altitude", nullptr}, {"latitude", lat}, {"longitude", lon}};
}

json status_of(bool success, int code, bool user_kind) {
    if (success || code == 0)
        return {{"errorCode", 0},
                {"failureReason", user_kind ? json("Other.") : json(nullptr)},
                {"additionalDetails", nullptr}};
    json details = nullptr;
    if (code == 50126)
        details =
            "The user didn't enter the right credentials. It's expected to see some number "
            "of these errors in your logs due to users making mistakes.";
    return {{"errorCode", code},
            {"failureReason", failure_reason(code)},
            {"additionalDetails", details}};
}

}  // namespace

nlohmann::json make_sign_in(rng& r, const lab_options& opts, const sign_in_params& p) {
    const bool user_kind =
        p.type == sign_in_type::interactive || p.type == sign_in_type::non_interactive;
    const int code = p.success ? 0 : (p.error_code != 0 ? p.error_code : 50126);
    json j;
    j["id"] = p.id;
    j["createdDateTime"] = iso_time(p.created_us, 7, true, static_cast<int>(r.below(10)));
    j["correlationId"] = r.guid();
    j["resourceTenantId"] = opts.tenant_id;
    j["homeTenantId"] = opts.tenant_id;
    j["riskDetail"] = "none";
    j["riskLevelAggregated"] = "none";
    j["riskLevelDuringSignIn"] = "none";
    j["riskState"] = "none";
    j["riskEventTypes"] = json::array();
    j["riskEventTypes_v2"] = json::array();
    j["status"] = status_of(p.success, code, user_kind);
    j["signInEventTypes"] = json::array({event_type_name(p.type)});
    j["originalRequestId"] = r.guid();
    j["processingTimeInMilliseconds"] = 20 + static_cast<int>(r.below(400));
    j["tokenIssuerName"] = "";
    j["tokenIssuerType"] = "AzureAD";
    j["flaggedForReview"] = false;
    j["isTenantRestricted"] = false;
    j["isThroughGlobalSecureAccess"] = false;
    j["crossTenantAccessType"] = "none";
    j["autonomousSystemNumber"] = 64496 + static_cast<int>(r.below(15));
    j["uniqueTokenIdentifier"] = r.base64url_bytes(16);
    j["homeTenantName"] = "Contoso";
    j["networkLocationDetails"] = json::array();
    j["authenticationRequirementPolicies"] = json::array();
    j["sessionLifetimePolicies"] = json::array();
    j["authenticationAppDeviceDetails"] = nullptr;

    if (user_kind) {
        const person& u = *p.user;
        const bool interactive = p.type == sign_in_type::interactive;
        const app_info& app = interactive ? r.pick(interactive_apps) : r.pick(background_apps);
        // Break-glass accounts are used from the portal; that is what an operator would see.
        const bool breakglass = u.id == ids::bg1 || u.id == ids::bg2;
        const app_info& a = breakglass && interactive ? interactive_apps[0] : app;
        j["userDisplayName"] = u.display_name;
        j["userPrincipalName"] = lower(u.upn);
        j["userId"] = u.id;
        j["appId"] = a.app_id;
        j["appDisplayName"] = a.app_name;
        j["ipAddress"] = u.ip;
        j["clientAppUsed"] = a.client_app_used;
        j["userAgent"] = r.pick(user_agents);
        j["isInteractive"] = interactive;
        j["resourceDisplayName"] = a.resource_name;
        j["resourceId"] = a.resource_id;
        j["resourceServicePrincipalId"] = r.guid();
        j["servicePrincipalId"] = "";
        j["servicePrincipalName"] = "";
        j["userType"] = "member";
        j["clientCredentialType"] = "none";
        j["incomingTokenType"] = interactive ? "none" : "primaryRefreshToken";
        j["authenticationProtocol"] = "none";
        j["authenticationRequirement"] =
            breakglass ? "singleFactorAuthentication" : "multiFactorAuthentication";
        j["authenticationMethodsUsed"] =
            code == 0 && interactive ? json::array({"Password"}) : json::array();
        j["authenticationDetails"] = json::array();
        if (interactive)
            j["authenticationDetails"].push_back(
                {{"authenticationStepDateTime", iso_time(p.created_us, 0)},
                 {"authenticationMethod", "Password"},
                 {"authenticationMethodDetail", "Password in the cloud"},
                 {"succeeded", code == 0},
                 {"authenticationStepResultDetail",
                  code == 0
                      ? "Correct password"
                      : "Invalid username or password or Invalid on-premise username or password."},
                 {"authenticationStepRequirement", "Primary authentication"}});
        j["authenticationProcessingDetails"] = json::array();
        j["deviceDetail"] = {{"deviceId", u.device_id},
                             {"displayName", u.device_name},
                             {"operatingSystem", u.os},
                             {"browser", interactive ? u.browser : ""},
                             {"isCompliant", !u.device_id.empty()},
                             {"isManaged", !u.device_id.empty()},
                             {"trustType", u.device_id.empty() ? "" : "Azure AD joined"}};
        j["location"] = {{"city", u.city},
                         {"state", u.state},
                         {"countryOrRegion", u.country},
                         {"geoCoordinates", geo(u.latitude, u.longitude)}};
        const bool blocked = code == 53003;
        j["conditionalAccessStatus"] = blocked ? "failure" : (code == 0 ? "success" : "notApplied");
        json policies = json::array();
        if (blocked)
            policies.push_back(ca_policy("8e27ae8f-7b5f-420a-bbc7-fdcdc89d5dfb",
                                         "Block sign-ins from outside allowed countries", "Block",
                                         "failure"));
        policies.push_back(ca_policy("84bb9261-5da8-4067-a100-6801f8e52d85",
                                     "Require MFA for admins", "Mfa", "notApplied"));
        // Break-glass accounts are excluded from every policy, by design.
        if (breakglass) policies = json::array();
        j["appliedConditionalAccessPolicies"] = std::move(policies);
        j["mfaDetail"] = nullptr;
        j["managedServiceIdentity"] = {{"msiType", "none"},
                                       {"associatedResourceId", nullptr},
                                       {"federatedTokenId", nullptr},
                                       {"federatedTokenIssuer", nullptr}};
        return j;
    }

    const bool mi = p.type == sign_in_type::managed_identity;
    const principal& sp = mi ? r.pick(managed_identities) : r.pick(service_principals);
    j["userDisplayName"] = nullptr;
    j["userPrincipalName"] = nullptr;
    j["userId"] = "";
    j["appId"] = sp.app_id;
    j["appDisplayName"] = sp.name;
    j["ipAddress"] = mi ? "" : "192.0.2." + std::to_string(10 + r.below(200));
    j["clientAppUsed"] = nullptr;
    j["userAgent"] = nullptr;
    j["isInteractive"] = false;
    j["conditionalAccessStatus"] = "notApplied";
    j["resourceDisplayName"] = "Microsoft Graph";
    j["resourceId"] = std::string(ids::graph_resource);
    j["resourceServicePrincipalId"] = graph_sp_id;
    j["servicePrincipalId"] = sp.sp_id;
    j["servicePrincipalName"] = sp.name;
    j["servicePrincipalCredentialKeyId"] = mi ? "" : r.guid();
    j["servicePrincipalCredentialThumbprint"] = "";
    j["federatedCredentialId"] = nullptr;
    j["userType"] = nullptr;
    j["clientCredentialType"] = mi ? "managedIdentity" : "clientSecret";
    j["incomingTokenType"] = "none";
    j["authenticationProtocol"] = "none";
    j["authenticationRequirement"] = "singleFactorAuthentication";
    j["authenticationMethodsUsed"] = json::array();
    j["authenticationDetails"] = json::array();
    j["authenticationProcessingDetails"] =
        json::array({{{"key", "Azure AD App Authentication Library"},
                      {"value", "Family: MSAL Library: MSAL.NET 4.61.3 Platform: Linux"}}});
    j["deviceDetail"] = {{"deviceId", ""}, {"displayName", ""},    {"operatingSystem", ""},
                         {"browser", ""},  {"isCompliant", false}, {"isManaged", false},
                         {"trustType", ""}};
    const place& pl = r.pick(places);
    j["location"] = {{"city", pl.city},
                     {"state", pl.state},
                     {"countryOrRegion", pl.country},
                     {"geoCoordinates", geo(pl.lat, pl.lon)}};
    j["appliedConditionalAccessPolicies"] = json::array();
    j["managedServiceIdentity"] = mi ? json{{"msiType", "systemAssigned"},
                                            {"associatedResourceId",
                                             "/subscriptions/6f1f4c1e-1d0b-4a4e-9a43-2b1f0f0f0f0f/"
                                             "resourceGroups/prod/providers/"
                                             "Microsoft.Compute/virtualMachines/" +
                                                 std::string(sp.name)},
                                            {"federatedTokenId", nullptr},
                                            {"federatedTokenIssuer", nullptr}}
                                     : json{{"msiType", "none"},
                                            {"associatedResourceId", nullptr},
                                            {"federatedTokenId", nullptr},
                                            {"federatedTokenIssuer", nullptr}};
    return j;
}

namespace {

struct activity_info {
    const char* name;
    const char* category;
    const char* service;
    const char* operation;
};
constexpr activity_info activities[] = {
    {"Reset user password", "UserManagement", "Core Directory", "Update"},
    {"Reset password (by admin)", "UserManagement", "Self-service Password Management", "Update"},
    {"Change user password", "UserManagement", "Core Directory", "Update"},
    {"Update user", "UserManagement", "Core Directory", "Update"},
    {"Disable account", "UserManagement", "Core Directory", "Update"},
    {"Delete user", "UserManagement", "Core Directory", "Delete"},
    {"Add user", "UserManagement", "Core Directory", "Add"},
    {"Add member to role", "RoleManagement", "Core Directory", "Assign"},
    {"Remove member from role", "RoleManagement", "Core Directory", "Unassign"},
    {"Add member to group", "GroupManagement", "Core Directory", "Assign"},
    {"Update StsRefreshTokenValidFrom Timestamp", "UserManagement", "Core Directory", "Update"},
    {"Update conditional access policy", "Policy", "Conditional Access", "Update"},
};

std::string audit_id(rng& r, const std::string& correlation) {
    static constexpr char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string tag;
    for (int i = 0; i < 5; ++i)
        tag += alnum[r.below(sizeof alnum - 1)];
    return "Directory_" + correlation + "_" + tag + "_" +
           std::to_string(10000000 + r.below(89999999));
}

json modified(const char* name, json old_value, json new_value) {
    auto enc = [](const json& v) { return v.is_null() ? json(nullptr) : json(v.dump()); };
    return {{"displayName", name}, {"oldValue", enc(old_value)}, {"newValue", enc(new_value)}};
}

}  // namespace

nlohmann::json make_audit(rng& r, const lab_options& opts, const audit_params& p) {
    const activity_info* info = nullptr;
    for (const auto& a : activities)
        if (p.activity == a.name) info = &a;
    const std::string correlation = r.guid();
    json j;
    j["id"] = audit_id(r, correlation);
    j["category"] = info ? info->category : "Other";
    j["correlationId"] = correlation;
    j["result"] = p.success ? "success" : "failure";
    j["resultReason"] = p.success ? "" : "Microsoft.Online.Workflows.ObjectAlreadyExistsException";
    j["activityDisplayName"] = p.activity;
    j["activityDateTime"] = iso_time(p.created_us, 7, true, static_cast<int>(r.below(10)));
    j["loggedByService"] = info ? info->service : "Core Directory";
    j["operationType"] = info ? info->operation : "Update";
    std::string agent = r.pick(user_agents);
    if (p.actor || !p.actor_id.empty()) {
        json user = {{"id", p.actor ? p.actor->id : p.actor_id},
                     {"displayName", p.actor ? json(p.actor->display_name) : json(nullptr)},
                     {"userPrincipalName", p.actor ? json(lower(p.actor->upn)) : json(nullptr)},
                     {"ipAddress", p.actor ? p.actor->ip : "198.51.100.23"},
                     {"userType", "Member"},
                     {"homeTenantId", nullptr},
                     {"homeTenantName", nullptr}};
        j["initiatedBy"] = {{"app", nullptr}, {"user", std::move(user)}};
    } else {
        j["initiatedBy"] = {{"user", nullptr},
                            {"app",
                             {{"appId", opts.client_id},
                              {"displayName", opts.client_display_name},
                              {"servicePrincipalId", "ac1b1732-bf51-4dd1-9fcc-801cbaa9c790"},
                              {"servicePrincipalName", nullptr}}}};
        agent = "Microsoft Azure Graph Client Library 1.0";
    }
    json target = {{"id", p.target ? p.target->id : p.target_id},
                   {"displayName", nullptr},
                   {"type", "User"},
                   {"userPrincipalName", p.target ? json(lower(p.target->upn)) : json(nullptr)},
                   {"groupType", nullptr},
                   {"modifiedProperties", json::array()}};
    json targets = json::array();
    const std::string act = p.activity;
    if (act == "Add member to role" || act == "Remove member from role") {
        const bool add = act == "Add member to role";
        json role = add ? json("Global Administrator") : json(nullptr);
        target["modifiedProperties"] = json::array(
            {modified("Role.DisplayName", add ? json(nullptr) : json("Global Administrator"), role),
             modified("Role.TemplateId", nullptr, "62e90394-69f5-4237-9190-012177145e10"),
             modified("Role.WellKnownObjectName", nullptr, "TenantAdmins")});
        targets.push_back(target);
        targets.push_back({{"id", "3bd81017-899b-434b-a40d-2a9d39623d4e"},
                           {"displayName", "Global Administrator"},
                           {"type", "Role"},
                           {"userPrincipalName", nullptr},
                           {"groupType", nullptr},
                           {"modifiedProperties", json::array()}});
    } else if (act == "Add member to group") {
        targets.push_back(target);
        targets.push_back(
            {{"id", "20660f84-11cd-4df4-a61a-637cecf8c343"},
             {"displayName", "Finance Approvers"},
             {"type", "Group"},
             {"userPrincipalName", nullptr},
             {"groupType", "azureAD"},
             {"modifiedProperties",
              json::array(
                  {modified("Group.ObjectID", nullptr, "20660f84-11cd-4df4-a61a-637cecf8c343"),
                   modified("Group.DisplayName", nullptr, "Finance Approvers")})}});
    } else {
        if (act == "Update user" || act == "Disable account")
            target["modifiedProperties"] = json::array(
                {modified(act == "Update user" ? "StrongAuthenticationMethod" : "AccountEnabled",
                          act == "Update user" ? json("[]") : json::array({true}),
                          act == "Update user" ? json("[{\"MethodType\":6,\"Default\":true}]")
                                               : json::array({false})),
                 modified("Included Updated Properties", nullptr,
                          act == "Update user" ? "StrongAuthenticationMethod" : "AccountEnabled")});
        targets.push_back(target);
    }
    j["targetResources"] = std::move(targets);
    j["additionalDetails"] = json::array({{{"key", "User-Agent"}, {"value", agent}}});
    j["userAgent"] = agent;  // beta only
    return j;
}

nlohmann::json strip_beta(const nlohmann::json& record, log_kind kind) {
    json out = record;
    if (kind == log_kind::sign_ins) {
        for (const char* k : beta_only_sign_in)
            out.erase(k);
        if (auto it = out.find("deviceDetail"); it != out.end() && it->is_object())
            it->erase("browserId");
    } else {
        out.erase("userAgent");
        if (auto it = out.find("initiatedBy"); it != out.end() && it->is_object())
            it->erase("linkableIdentifiers");
    }
    return out;
}

}  // namespace glasswatch::lab::detail
