// Unit tests for the pure posture core: Graph JSON -> structs -> check results -> what changed
// since the last check -> alerts; and the [posture] configuration section.
#include "core/alerting/posture.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using namespace glasswatch::core;
using namespace glasswatch::core::posture;
using nlohmann::json;

namespace {

const std::string bg1 = "0b7e3f1a-5c2d-4e8f-9a6b-1c2d3e4f5a6b";
const std::string bg2 = "5f6e7d8c-9b0a-4c1d-8e2f-3a4b5c6d7e8f";
const std::string other = "cc474c45-ee95-4669-8e8e-b7658862e5cc";
const std::string group = "7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
const std::string ga = std::string(global_admin_role);

fetch_outcome ok_fetch() {
    return {fetch_state::ok, ""};
}

role_assignment permanent_ga() {
    role_assignment a;
    a.role_definition_id = ga;
    a.assignment_type = "Assigned";
    a.expiration_type = "noExpiration";
    return a;
}

ca_policy policy(std::string id, std::string name, std::vector<std::string> grant) {
    ca_policy p;
    p.id = std::move(id);
    p.display_name = std::move(name);
    p.state = "enabled";
    p.include_users = {"All"};
    p.built_in_controls = std::move(grant);
    p.has_grant_controls = !p.built_in_controls.empty();
    return p;
}

// Two sound break-glass accounts, their group, and two CA policies that exclude them (one
// directly, one through the group).
posture_input passing_input() {
    posture_input in;
    for (const auto& [id, label] : {std::pair{bg1, "bg-admin-1"}, std::pair{bg2, "bg-admin-2"}}) {
        account_input a;
        a.account = {id, "", label};
        a.user.fetch = ok_fetch();
        a.user.id = id;
        a.user.account_enabled = true;
        a.roles.active_fetch = a.roles.schedule_fetch = a.roles.eligible_fetch = ok_fetch();
        role_assignment active;
        active.role_definition_id = ga;
        a.roles.active.push_back(active);
        a.roles.schedules.push_back(permanent_ga());
        in.accounts.push_back(std::move(a));
    }
    group_info g;
    g.id = group;
    g.fetch = ok_fetch();
    g.members = {bg1, bg2};
    in.groups.push_back(g);
    in.expected_members = {bg1, bg2};
    in.ca.fetch = ok_fetch();
    ca_policy mfa = policy("11111111-1111-4111-8111-111111111111", "Require MFA", {"mfa"});
    mfa.exclude_groups = {group};
    ca_policy block = policy("22222222-2222-4222-8222-222222222222", "Block legacy", {"block"});
    block.exclude_users = {bg1, bg2};
    in.ca.policies = {mfa, block};
    return in;
}

const check_result* find(const std::vector<check_result>& rs, std::string_view check,
                         const std::string& subject) {
    for (const auto& r : rs)
        if (r.check == check && r.subject == subject) return &r;
    return nullptr;
}

std::size_t count_status(const std::vector<check_result>& rs, status s) {
    std::size_t n = 0;
    for (const auto& r : rs)
        n += r.st == s;
    return n;
}

std::string failures(const std::vector<check_result>& rs) {
    std::string out;
    for (const auto& r : rs)
        if (r.st != status::ok) out += r.key() + ": " + r.problem + "\n";
    return out;
}

const std::string policy_mfa = "11111111-1111-4111-8111-111111111111";
const std::string policy_block = "22222222-2222-4222-8222-222222222222";

}  // namespace

// ---- parsing -----------------------------------------------------------------------------------

TEST_CASE("posture: user objects parse with cloud-only as the default", "[posture]") {
    user_info u;
    std::string err;
    REQUIRE(parse_user(R"({"id":"0B7E3F1A-5C2D-4E8F-9A6B-1C2D3E4F5A6B","userPrincipalName":"bg1@x",
        "accountEnabled":true,"onPremisesSyncEnabled":null})",
                       u, err));
    CHECK(u.id == bg1);
    CHECK(u.account_enabled);
    CHECK_FALSE(u.on_premises_sync);
    REQUIRE(
        parse_user(R"({"id":"a","accountEnabled":false,"onPremisesSyncEnabled":true})", u, err));
    CHECK_FALSE(u.account_enabled);
    CHECK(u.on_premises_sync);
    CHECK_FALSE(parse_user(R"({"id":"a"})", u, err));
    CHECK_FALSE(parse_user("not json", u, err));
    CHECK_FALSE(parse_user(std::string(200, '[') + std::string(200, ']'), u, err));
    CHECK(err.find("deeply") != std::string::npos);
}

TEST_CASE("posture: role schedules members and CA pages parse with their nextLink", "[posture]") {
    std::vector<role_assignment> roles;
    std::string next, err;
    REQUIRE(parse_role_page(R"({"value":[{"roleDefinitionId":"62E90394-69F5-4237-9190-012177145E10",
        "directoryScopeId":"/","assignmentType":"Assigned","scheduleInfo":{"expiration":
        {"type":"afterDateTime","endDateTime":"2026-12-01T00:00:00Z"}}}],
        "@odata.nextLink":"https://graph/next"})",
                            roles, next, err));
    REQUIRE(roles.size() == 1);
    CHECK(roles[0].role_definition_id == ga);
    CHECK(roles[0].expiration_type == "afterDateTime");
    CHECK(roles[0].expiration_end == "2026-12-01T00:00:00Z");
    CHECK(next == "https://graph/next");
    CHECK_FALSE(parse_role_page(R"({"error":{"code":"x"}})", roles, next, err));

    std::vector<std::string> members;
    REQUIRE(parse_members_page(R"({"value":[{"@odata.type":"#microsoft.graph.user","id":"AB"},
        {"id":"cd"}]})",
                               members, next, err));
    CHECK(members == std::vector<std::string>{"ab", "cd"});
    CHECK(next.empty());

    std::vector<ca_policy> ps;
    REQUIRE(parse_ca_page(R"({"value":[
      {"id":"P1","displayName":"MFA","state":"enabled","conditions":{"users":{"includeUsers":["All"],
       "excludeUsers":["X"],"includeGroups":[],"excludeGroups":["G"]}},
       "grantControls":{"operator":"OR","builtInControls":["mfa"]},"sessionControls":null},
      {"id":"p2","state":"enabled","conditions":{"users":{"includeUsers":["all"]}},
       "grantControls":{"builtInControls":[],"authenticationStrength":{"id":"s"}}},
      {"id":"p3","state":"enabled","grantControls":null,"sessionControls":{"signInFrequency":{}}},
      {"id":"p4","state":"enabledForReportingButNotEnforced","grantControls":{"builtInControls":["block"]}}
    ]})",
                          ps, next, err));
    REQUIRE(ps.size() == 4);
    CHECK(ps[0].id == "p1");
    CHECK(ps[0].exclude_users == std::vector<std::string>{"x"});
    CHECK(ps[0].exclude_groups == std::vector<std::string>{"g"});
    CHECK(ps[0].can_block());
    CHECK(ps[1].include_users == std::vector<std::string>{"All"});
    CHECK(ps[1].can_block());  // an authentication strength is a grant control
    CHECK_FALSE(ps[2].can_block());
    CHECK(ps[2].has_session_controls);
    CHECK_FALSE(ps[3].can_block());  // report-only never blocks
}

// ---- evaluation --------------------------------------------------------------------------------

TEST_CASE("posture: a sound setup passes every check", "[posture]") {
    const auto rs = evaluate(passing_input());
    INFO(failures(rs));
    CHECK(all_pass(rs));
    // 4 per account, 1 group, 2 CA exclusion checks, 2 CA include checks ("All" policies).
    CHECK(rs.size() == 4 * 2 + 1 + 2 + 2);
    CHECK(find(rs, check_ca_excluded, policy_mfa) != nullptr);
}

TEST_CASE("posture: account states that fail", "[posture]") {
    posture_input in = passing_input();
    SECTION("deleted") {
        in.accounts[0].user.fetch = {fetch_state::not_found, "HTTP 404"};
        const auto rs = evaluate(in);
        CHECK(find(rs, check_account_exists, bg1)->st == status::fail);
        // What depends on the object is unknown, not "fixed".
        CHECK(find(rs, check_account_enabled, bg1)->st == status::cannot_check);
    }
    SECTION("disabled") {
        in.accounts[0].user.account_enabled = false;
        const auto rs = evaluate(in);
        const auto* r = find(rs, check_account_enabled, bg1);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("disabled") != std::string::npos);
    }
    SECTION("synchronised from on-premises") {
        in.accounts[1].user.on_premises_sync = true;
        CHECK(find(evaluate(in), check_cloud_only, bg2)->st == status::fail);
    }
    SECTION("Global Administrator only eligible") {
        in.accounts[0].roles.active.clear();
        in.accounts[0].roles.schedules.clear();
        in.accounts[0].roles.eligible.push_back(permanent_ga());
        const auto rs = evaluate(in);
        const auto* r = find(rs, check_global_admin, bg1);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("PIM-eligible") != std::string::npos);
    }
    SECTION("Global Administrator removed") {
        in.accounts[0].roles.active.clear();
        CHECK(find(evaluate(in), check_global_admin, bg1)->problem.find("does not hold") !=
              std::string::npos);
    }
    SECTION("Global Administrator active through a PIM activation") {
        in.accounts[0].roles.schedules[0].assignment_type = "Activated";
        in.accounts[0].roles.schedules[0].expiration_type = "afterDateTime";
        CHECK(find(evaluate(in), check_global_admin, bg1)->problem.find("activation") !=
              std::string::npos);
    }
    SECTION("Global Administrator time-bound") {
        in.accounts[0].roles.schedules[0].expiration_type = "afterDateTime";
        in.accounts[0].roles.schedules[0].expiration_end = "2026-12-01T00:00:00Z";
        const auto rs = evaluate(in);
        const auto* r = find(rs, check_global_admin, bg1);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("2026-12-01") != std::string::npos);
    }
    SECTION("a GA role at a narrower scope does not count") {
        in.accounts[0].roles.active[0].directory_scope_id = "/administrativeUnits/x";
        CHECK(find(evaluate(in), check_global_admin, bg1)->st == status::fail);
    }
    SECTION("no PIM schedules to read: an active assignment is permanent") {
        in.accounts[0].roles.schedule_fetch = {fetch_state::failed, "HTTP 400"};
        in.accounts[0].roles.schedules.clear();
        CHECK(find(evaluate(in), check_global_admin, bg1)->st == status::ok);
    }
}

TEST_CASE("posture: group membership must be exactly the expected accounts", "[posture]") {
    posture_input in = passing_input();
    in.groups[0].members = {bg1, other};
    const auto rs = evaluate(in);
    const auto* r = find(rs, check_group_membership, group);
    REQUIRE(r != nullptr);
    CHECK(r->st == status::fail);
    CHECK(r->problem.find("unexpected member(s): " + other) != std::string::npos);
    CHECK(r->problem.find("missing member(s): bg-admin-2") != std::string::npos);
}

TEST_CASE("posture: Conditional Access exclusions and inclusions", "[posture]") {
    posture_input in = passing_input();
    SECTION("a blocking policy without the exclusion") {
        in.ca.policies[1].exclude_users = {bg1};
        const auto rs = evaluate(in);
        const auto* r = find(rs, check_ca_excluded, policy_block);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("bg-admin-2") != std::string::npos);
        CHECK(r->problem.find("bg-admin-1") == std::string::npos);
        // "All" without the exclusion also includes the account.
        CHECK(find(rs, check_ca_includes, policy_block)->st == status::fail);
    }
    SECTION("exclusion through the group only counts for its members") {
        in.groups[0].members = {bg1};
        const auto rs = evaluate(in);
        const auto* r = find(rs, check_ca_excluded, policy_mfa);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("bg-admin-2") != std::string::npos);
    }
    SECTION("a policy naming an account in includeUsers is flagged even when excluded") {
        in.ca.policies[1].include_users = {bg2};
        const auto rs = evaluate(in);
        CHECK(find(rs, check_ca_excluded, policy_block)->st == status::ok);
        const auto* r = find(rs, check_ca_includes, policy_block);
        CHECK(r->st == status::fail);
        CHECK(r->problem.find("includeUsers") != std::string::npos);
    }
    SECTION("report-only and disabled policies are ignored") {
        in.ca.policies[1].exclude_users.clear();
        in.ca.policies[1].state = "enabledForReportingButNotEnforced";
        auto rs = evaluate(in);
        CHECK(find(rs, check_ca_excluded, policy_block) == nullptr);
        in.ca.policies[1].state = "disabled";
        rs = evaluate(in);
        INFO(failures(rs));
        CHECK(all_pass(rs));
    }
    SECTION("a session-only policy cannot block but may not include the accounts") {
        in.ca.policies[1].exclude_users.clear();
        in.ca.policies[1].built_in_controls.clear();
        in.ca.policies[1].has_grant_controls = false;
        in.ca.policies[1].has_session_controls = true;
        const auto rs = evaluate(in);
        CHECK(find(rs, check_ca_excluded, policy_block) == nullptr);
        CHECK(find(rs, check_ca_includes, policy_block)->st == status::fail);
    }
}

TEST_CASE("posture: a missing permission degrades only its checks", "[posture]") {
    posture_input in = passing_input();
    in.accounts[0].user.fetch = {fetch_state::denied, "HTTP 403"};
    in.accounts[1].roles.active_fetch = {fetch_state::denied, "HTTP 403"};
    in.groups[0].fetch = {fetch_state::denied, "HTTP 403"};
    in.ca.fetch = {fetch_state::denied, "HTTP 403"};
    const auto rs = evaluate(in);
    const auto* u = find(rs, check_account_enabled, bg1);
    CHECK(u->st == status::cannot_check);
    CHECK(u->permission == "User.Read.All");
    CHECK(u->problem == "cannot check: missing permission User.Read.All");
    CHECK(find(rs, check_global_admin, bg2)->permission == "RoleManagement.Read.Directory");
    CHECK(find(rs, check_group_membership, group)->permission == "GroupMember.Read.All");
    CHECK(find(rs, check_ca_excluded, "*")->permission == "Policy.Read.All");
    CHECK(find(rs, check_account_enabled, bg2)->st == status::ok);
    CHECK_FALSE(all_pass(rs));
    CHECK(count_status(rs, status::fail) == 0);
}

// ---- what changed since the last check ---------------------------------------------------------

namespace {

const alert_context ctx{"3d29e181-4b4e-4710-8621-280aad0bc235", "contoso"};
constexpr micros t0 = 1'800'000'000'000'000;
constexpr micros minute = 60'000'000;

posture_input broken_exclusion() {
    posture_input in = passing_input();
    in.ca.policies[1].exclude_users = {bg1};
    return in;
}

std::vector<alert> alerts_of(const diff_result& d, micros now) {
    return posture_alerts(ctx, d.changes, now);
}

}  // namespace

TEST_CASE("posture: a persisting failure alerts once and its fix is announced once", "[posture]") {
    posture_state s0;
    auto d1 = diff(s0, evaluate(broken_exclusion()), t0);
    REQUIRE(d1.changes.size() == 2);  // not excluded + included through "All"
    CHECK(d1.changes[0].kind == change_kind::new_failure);
    auto a1 = alerts_of(d1, t0);
    REQUIRE(a1.size() == 2);
    CHECK(a1[0].rule == "posture_ca_not_excluded");
    CHECK(a1[0].sev == severity::critical);
    CHECK(a1[0].subject_id == policy_block);
    CHECK(a1[0].summary.find("does not exclude") != std::string::npos);
    CHECK(a1[1].rule == "posture_ca_includes");

    // 15 minutes later, same state: nothing new, the episode (alert id source) is unchanged.
    auto d2 = diff(d1.next, evaluate(broken_exclusion()), t0 + 15 * minute);
    CHECK(d2.changes.empty());
    const std::string key = std::string(check_ca_excluded) + "/" + policy_block;
    CHECK(d2.next.entries.at(key).episode == d1.next.entries.at(key).episode);
    CHECK(d2.next.entries.at(key).since == t0);

    // Survives a restart: the state goes through its JSON form.
    auto restored = posture_state::from_json(d2.next.to_json());
    REQUIRE(restored);
    auto d3 = diff(*restored, evaluate(passing_input()), t0 + 30 * minute);
    REQUIRE(d3.changes.size() == 2);
    CHECK(d3.changes[0].kind == change_kind::fixed);
    CHECK(d3.changes[0].previous.find("does not exclude") != std::string::npos);
    auto a3 = alerts_of(d3, t0 + 30 * minute);
    CHECK(a3[0].rule == "posture_fixed");
    CHECK(a3[0].sev == severity::info);
    CHECK(a3[0].id != a3[1].id);
    CHECK(json::parse(a3[0].detail_json)["details"]["previousProblem"].get<std::string>().find(
              "does not exclude") != std::string::npos);

    // Breaking it again is a new episode: a new alert id, so it pages again.
    auto d4 = diff(d3.next, evaluate(broken_exclusion()), t0 + 45 * minute);
    auto a4 = alerts_of(d4, t0 + 45 * minute);
    REQUIRE(a4.size() == 2);
    CHECK(a4[0].id != a1[0].id);
    CHECK(diff(d4.next, evaluate(passing_input()), t0 + 50 * minute).changes.size() == 2);
}

TEST_CASE("posture: two instances with the same history raise the same alert ids", "[posture]") {
    // Redundant instances check at different moments; PagerDuty must collapse their pages.
    auto a = diff(posture_state{}, evaluate(broken_exclusion()), t0);
    auto b = diff(posture_state{}, evaluate(broken_exclusion()), t0 + 7 * minute);
    CHECK(alerts_of(a, t0)[0].id == alerts_of(b, t0 + 7 * minute)[0].id);
    auto fa = diff(a.next, evaluate(passing_input()), t0 + 20 * minute);
    auto fb = diff(b.next, evaluate(passing_input()), t0 + 21 * minute);
    CHECK(alerts_of(fa, t0)[0].id == alerts_of(fb, t0)[0].id);
}

TEST_CASE("posture: a failure that changes its details alerts again with what changed",
          "[posture]") {
    auto d1 = diff(posture_state{}, evaluate(broken_exclusion()), t0);
    posture_input worse = passing_input();
    worse.ca.policies[1].exclude_users.clear();
    auto d2 = diff(d1.next, evaluate(worse), t0 + minute);
    REQUIRE_FALSE(d2.changes.empty());
    CHECK(d2.changes[0].kind == change_kind::changed);
    auto a2 = alerts_of(d2, t0 + minute);
    CHECK(a2[0].rule == "posture_ca_not_excluded");
    CHECK(a2[0].summary.find("(was: ") != std::string::npos);
    CHECK(a2[0].id != alerts_of(d1, t0)[0].id);
    CHECK(d2.next.entries.begin()->second.since <= t0 + minute);
}

TEST_CASE("posture: a deleted failing policy is announced as fixed", "[posture]") {
    auto d1 = diff(posture_state{}, evaluate(broken_exclusion()), t0);
    posture_input gone = passing_input();
    gone.ca.policies.pop_back();
    auto d2 = diff(d1.next, evaluate(gone), t0 + minute);
    REQUIRE(d2.changes.size() == 2);
    CHECK(d2.changes[0].kind == change_kind::fixed);
    CHECK(d2.changes[0].result.subject == policy_block);
    CHECK(d2.changes[0].vanished);
    CHECK(alerts_of(d2, t0 + minute)[0].summary.find("no longer applies") != std::string::npos);
    // Re-created with the same problem later: a new alert, not the old id.
    auto d3 = diff(d2.next, evaluate(broken_exclusion()), t0 + 2 * minute);
    REQUIRE(d3.changes.size() == 2);
    CHECK(d3.changes[0].kind == change_kind::new_failure);
    CHECK(alerts_of(d3, t0 + 2 * minute)[0].id != alerts_of(d1, t0)[0].id);
}

TEST_CASE("posture: cannot_check keeps an open failure and reports the permission once",
          "[posture]") {
    auto d1 = diff(posture_state{}, evaluate(broken_exclusion()), t0);
    posture_input denied = broken_exclusion();
    denied.ca.fetch = {fetch_state::denied, "HTTP 403"};
    auto d2 = diff(d1.next, evaluate(denied), t0 + minute);
    // No "fixed" for the policies that could not be read; one degraded-check notice per check.
    for (const auto& c : d2.changes)
        CHECK(c.kind == change_kind::cannot_check);
    auto a2 = alerts_of(d2, t0 + minute);
    REQUIRE(a2.size() == 1);
    CHECK(a2[0].rule == "posture_cannot_check");
    CHECK(a2[0].summary.find("missing Graph permission Policy.Read.All") != std::string::npos);
    CHECK(d2.next.entries.at(std::string(check_ca_excluded) + "/" + policy_block).st ==
          status::fail);
    // Still denied: nothing new.
    auto d3 = diff(d2.next, evaluate(denied), t0 + 2 * minute);
    CHECK(d3.changes.empty());
    // Readable and fixed: announced.
    auto d4 = diff(d3.next, evaluate(passing_input()), t0 + 3 * minute);
    REQUIRE(d4.changes.size() == 2);
    CHECK(d4.changes[0].kind == change_kind::fixed);
}

TEST_CASE("posture: unreadable state is refused", "[posture]") {
    CHECK_FALSE(posture_state::from_json("nonsense"));
    CHECK_FALSE(posture_state::from_json(R"({"version":2,"checkedAt":1,"entries":{}})"));
    CHECK_FALSE(posture_state::from_json(
        R"({"version":1,"checkedAt":1,"entries":{"a/b":{"status":"maybe","since":1}}})"));
    auto s = posture_state::from_json(R"({"version":1,"checkedAt":5,"entries":{}})");
    REQUIRE(s);
    CHECK(s->checked_at == 5);
}

// ---- reports -------------------------------------------------------------------------------

TEST_CASE("posture: human and JSON reports", "[posture]") {
    posture_input in = broken_exclusion();
    in.groups[0].fetch = {fetch_state::denied, "HTTP 403"};
    const auto rs = evaluate(in);
    const std::string text = render_text(rs);
    CHECK(text.find("posture: 2 failing, 1 cannot be checked") == 0);
    CHECK(text.find("FAIL") != std::string::npos);
    CHECK(text.find("cannot check: missing permission GroupMember.Read.All") != std::string::npos);
    const json j = json::parse(render_json(rs, t0));
    CHECK(j["ok"] == false);
    CHECK(j["summary"]["fail"] == 2);
    CHECK(j["summary"]["cannotCheck"] == 1);
    bool saw_rule = false;
    for (const auto& c : j["checks"])
        if (c["rule"] == "posture_ca_not_excluded" && c["status"] == "fail") saw_rule = true;
    CHECK(saw_rule);
    CHECK(json::parse(render_json(evaluate(passing_input()), t0))["ok"] == true);
}

// ---- configuration -------------------------------------------------------------------------

namespace {

const std::string base_config = R"([tenant]
id = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"
[watch]
groups = ["7d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d"]
[[watch.accounts]]
object_id = "3c9b7a15-2e4d-4f68-9a01-b2c3d4e5f607"
[[watch.accounts]]
object_id = "d4e5f607-1829-4a3b-8c4d-5e6f70819203"
[[sinks]]
name = "local"
type = "file"
path = "/var/lib/glasswatch/alerts.jsonl"
)";
const std::string graph_section = R"([sources.graph]
enabled = true
client_id = "1a2b3c4d-5e6f-4a70-8b91-a2b3c4d5e6f7"
client_secret = "env:S"
)";

std::string errors_of(const config_result& r) {
    std::string out;
    for (const auto& e : r.errors)
        out += format_error(e, "t.toml") + "\n";
    return out;
}

}  // namespace

TEST_CASE("posture config: defaults follow the Graph source and the watched accounts",
          "[posture][config]") {
    auto off = parse_config(base_config, "t.toml");
    REQUIRE(off.value);
    CHECK_FALSE(off.value->posture.enabled);
    auto on = parse_config(base_config + graph_section, "t.toml");
    INFO(errors_of(on));
    REQUIRE(on.value);
    CHECK(on.value->posture.enabled);
    CHECK(on.value->posture.interval == seconds{900});
    CHECK(on.value->posture.group_members ==
          std::vector<std::string>{"3c9b7a15-2e4d-4f68-9a01-b2c3d4e5f607",
                                   "d4e5f607-1829-4a3b-8c4d-5e6f70819203"});
}

TEST_CASE("posture config: explicit keys", "[posture][config]") {
    auto r = parse_config(base_config + graph_section +
                              "[posture]\nenabled = false\ninterval = \"90s\"\n"
                              "group_members = [\"3C9B7A15-2E4D-4F68-9A01-B2C3D4E5F607\"]\n",
                          "t.toml");
    INFO(errors_of(r));
    REQUIRE(r.value);
    CHECK_FALSE(r.value->posture.enabled);
    CHECK(r.value->posture.interval == seconds{90});
    CHECK(r.value->posture.group_members ==
          std::vector<std::string>{"3c9b7a15-2e4d-4f68-9a01-b2c3d4e5f607"});
}

TEST_CASE("posture config: errors name the key and line", "[posture][config]") {
    auto has = [](const config_result& r, const std::string& key, const std::string& fragment) {
        for (const auto& e : r.errors)
            if (e.key == key && e.message.find(fragment) != std::string::npos && e.line > 0)
                return true;
        return false;
    };
    auto r1 = parse_config(base_config + "[posture]\nenabled = true\n", "t.toml");
    CHECK(has(r1, "posture.enabled", "enable [sources.graph]"));
    auto r2 =
        parse_config(base_config + graph_section + "[posture]\nintervall = \"5m\"\n", "t.toml");
    CHECK(has(r2, "posture.intervall", "did you mean \"interval\""));
    auto r3 =
        parse_config(base_config + graph_section + "[posture]\ninterval = \"0s\"\n", "t.toml");
    CHECK(has(r3, "posture.interval", "at least"));
    auto r4 = parse_config(base_config + graph_section + "[posture]\ngroup_members = [\"x\"]\n",
                           "t.toml");
    CHECK(has(r4, "posture.group_members[0]", "GUID"));
    auto r5 =
        parse_config(base_config + graph_section + "[posture]\ngroup_members = []\n", "t.toml");
    CHECK(has(r5, "posture.group_members", "at least one"));
}

TEST_CASE("posture config: the example file enables posture every 15 minutes",
          "[posture][config]") {
    std::ifstream in(GLASSWATCH_SOURCE_DIR "/config/glasswatch.example.toml");
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = parse_config(ss.str(), "glasswatch.example.toml");
    INFO(errors_of(r));
    REQUIRE(r.value);
    CHECK(r.value->posture.enabled);
    CHECK(r.value->posture.interval == seconds{900});
    CHECK(r.value->posture.group_members.size() == 2);
}
