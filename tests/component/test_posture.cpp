// Component tests: the posture checker (real HTTPS client, token provider, store) against the
// lab's Graph directory endpoints. Per check: the passing state, each failing state, the
// recovery and the missing-permission case; then the periodic run with alerts, the "fixed"
// announcement and the state that survives a restart.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "io/sources/ingest.hpp"
#include "io/sources/posture_checker.hpp"
#include "io/store/runtime.hpp"
#include "lab/lab_graph.hpp"
#include "lab/lab_posture.hpp"
#include "support/https_server.hpp"

using namespace glasswatch;
namespace asio = boost::asio;
namespace posture = core::posture;
using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string bg1(lab::ids::bg1), bg2(lab::ids::bg2), admin(lab::ids::admin);
const std::string group(lab::posture_ids::bg_group);
const std::string ca_mfa(lab::posture_ids::ca_require_mfa);
const std::string ca_block(lab::posture_ids::ca_block_legacy);

struct posture_fixture {
    std::filesystem::path dir;
    test::test_pki pki = test::test_pki::generate();
    std::unique_ptr<lab::lab_tenant> lab;
    core::config cfg;
    io::posture_health health;
    io::graph_fetch_counters counters;

    posture_fixture() {
        char tmpl[] = "/tmp/glasswatch-posture-XXXXXX";
        dir = ::mkdtemp(tmpl);
        pki.write_ca((dir / "ca.pem").string());
        std::ofstream(dir / "secret") << "lab-secret-value";
        std::filesystem::permissions(dir / "secret", std::filesystem::perms::owner_read |
                                                         std::filesystem::perms::owner_write);
        lab::lab_options lo;
        lo.client_secret = "lab-secret-value";
        lab = std::make_unique<lab::lab_tenant>(lo);
        cfg.tenant_id = std::string(lab::ids::tenant);
        cfg.tenant_name = "contoso";
        cfg.watch.accounts.push_back({bg1, "", "bg1"});
        cfg.watch.accounts.push_back({bg2, "", "bg2"});
        cfg.watch.groups.push_back(group);
        cfg.graph.enabled = true;
        cfg.graph.client_id = std::string(lab::ids::client);
        cfg.graph.client_secret.file = (dir / "secret").string();
        cfg.graph.ca_file = (dir / "ca.pem").string();
        cfg.graph.request_timeout = 3s;
        cfg.posture.enabled = true;
        cfg.posture.interval = 1s;
        cfg.posture.group_members = {bg1, bg2};
        cfg.state_directory = (dir / "state").string();
        core::sink_config s;
        s.name = "file";
        s.path = "/dev/null";
        cfg.sinks.push_back(s);
    }
    ~posture_fixture() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void set(const json& spec) {
        auto r = lab->set_posture(spec);
        INFO(r.body.dump());
        REQUIRE(r.ok);
    }

    // The lab over HTTPS, a client and a token provider, for the duration of `body`.
    template <class Body>
    void with_graph(io::thread_pair& threads, Body body) {
        test::https_server::options so;
        so.cert_pem = pki.server_cert_pem;
        so.key_pem = pki.server_key_pem;
        test::https_server server(threads.main(), so, [this](const test::server_request& r) {
            return lab->handle(r, io::wall_now());
        });
        const std::string base = "https://127.0.0.1:" + std::to_string(server.port());
        cfg.graph.authority_host = base;
        cfg.graph.graph_base_url = base;
        io::https_client_options ho;
        ho.ca_file = cfg.graph.ca_file;
        ho.use_proxy_env = false;
        io::https_client http(threads.main().get_executor(), ho);
        std::string err;
        auto tokens = io::token_provider::create(http, cfg, err);
        INFO(err);
        REQUIRE(tokens);
        io::posture_checker checker(http, *tokens, cfg);
        body(checker, server);
        threads.run_main();
        threads.finish();
        health = checker.health();
        counters = checker.counters();
    }

    // One check_once() against the lab.
    std::vector<posture::check_result> check() {
        std::vector<posture::check_result> out;
        io::thread_pair threads;
        with_graph(threads, [&](io::posture_checker& checker, test::https_server& server) {
            asio::co_spawn(threads.main(), check_task(&threads.main(), &checker, &server, &out),
                           [](std::exception_ptr) {});
        });
        return out;
    }

    // The periodic run() until `done(store)` holds or `limit` passes.
    bool run(std::function<bool(io::store&)> done, std::chrono::milliseconds limit) {
        std::string err;
        auto db = io::store::open(cfg.state_directory, err);
        REQUIRE(db);
        io::thread_pair threads;
        io::runtime rt(threads.main(), threads.store_ctx(), *db);
        io::ingestor ingest(rt, cfg);
        bool held = false;
        with_graph(threads, [&](io::posture_checker& checker, test::https_server& server) {
            asio::co_spawn(threads.main(), checker.run(rt, ingest), [](std::exception_ptr) {});
            asio::co_spawn(threads.main(),
                           watch_task(&threads.main(), &rt, &checker, &server, done, limit, &held),
                           [](std::exception_ptr) {});
        });
        return held;
    }

    // Coroutines are free functions with by-value parameters, not lambdas: the body lambda that
    // spawns them returns before they run, and a lambda coroutine's captures would dangle.
    static asio::awaitable<void> check_task(asio::io_context* ctx, io::posture_checker* checker,
                                            test::https_server* server,
                                            std::vector<posture::check_result>* out) {
        asio::steady_timer t(*ctx);
        *out = co_await checker->check_once(t);
        server->stop();
    }

    static asio::awaitable<void> watch_task(asio::io_context* ctx, io::runtime* rt,
                                            io::posture_checker* checker,
                                            test::https_server* server,
                                            std::function<bool(io::store&)> done,
                                            std::chrono::milliseconds limit, bool* held) {
        asio::steady_timer t(*ctx);
        auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            t.expires_after(100ms);
            boost::system::error_code ec;
            co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
            auto check_store = [done](io::store& s) { return done(s); };
            if (co_await rt->on_store(std::move(check_store))) {
                *held = true;
                break;
            }
        }
        checker->stop();
        server->stop();
    }
};

const posture::check_result* find(const std::vector<posture::check_result>& rs,
                                  std::string_view check, const std::string& subject) {
    for (const auto& r : rs)
        if (r.check == check && r.subject == subject) return &r;
    return nullptr;
}

std::string report(const std::vector<posture::check_result>& rs) {
    return posture::render_text(rs);
}

// Asserts that exactly the named check fails (everything else passes).
void only_failing(const std::vector<posture::check_result>& rs, std::string_view check,
                  const std::string& subject, const std::string& fragment) {
    INFO(report(rs));
    const auto* r = find(rs, check, subject);
    REQUIRE(r != nullptr);
    CHECK(r->st == posture::status::fail);
    CHECK_THAT(r->problem, Catch::Contains(fragment));
    for (const auto& other : rs)
        if (&other != r) CHECK(other.st == posture::status::ok);
}

std::vector<io::outbox_row> alerts_with_rule(io::store& s, const std::string& rule) {
    std::vector<io::outbox_row> out;
    for (const auto& row : s.pending_all())
        if (row.a.rule == rule) out.push_back(row);
    return out;
}

}  // namespace

TEST_CASE("posture checker: the lab's initial state passes every check", "[posture]") {
    posture_fixture fx;
    const auto rs = fx.check();
    INFO(report(rs));
    CHECK(posture::all_pass(rs));
    // 4 per account + the group + exclusion and include checks of the 2 enabled policies.
    CHECK(rs.size() == 4 * 2 + 1 + 2 + 2);
    CHECK(fx.counters.requests == 4 * 2 + 1 + 1);
    auto st = fx.lab->stats();
    CHECK(st["by_path"].contains("/v1.0/identity/conditionalAccess/policies"));
    CHECK(st["by_path"].contains("/v1.0/groups/" + group + "/members"));
}

TEST_CASE("posture checker: account exists and is enabled", "[posture]") {
    posture_fixture fx;
    SECTION("deleted then restored") {
        fx.set({{"accounts", {{"bg1", {{"deleted", true}}}}}});
        const auto rs = fx.check();
        INFO(report(rs));
        CHECK(find(rs, posture::check_account_exists, bg1)->st == posture::status::fail);
        CHECK(find(rs, posture::check_account_enabled, bg1)->st == posture::status::cannot_check);
    }
    SECTION("disabled then enabled") {
        fx.set({{"accounts", {{"bg2", {{"enabled", false}}}}}});
        only_failing(fx.check(), posture::check_account_enabled, bg2, "disabled");
    }
    fx.set({{"reset", true}});
    CHECK(posture::all_pass(fx.check()));
}

TEST_CASE("posture checker: account is cloud-only", "[posture]") {
    posture_fixture fx;
    fx.set({{"accounts", {{"bg1", {{"synced", true}}}}}});
    only_failing(fx.check(), posture::check_cloud_only, bg1, "onPremisesSyncEnabled");
    fx.set({{"accounts", {{"bg1", {{"synced", false}}}}}});
    CHECK(posture::all_pass(fx.check()));
}

TEST_CASE("posture checker: Global Administrator is active and permanent", "[posture]") {
    posture_fixture fx;
    const std::pair<const char*, const char*> states[] = {{"eligible", "PIM-eligible"},
                                                          {"activated", "PIM activation"},
                                                          {"time_bound", "2026-12-31"},
                                                          {"removed", "does not hold"}};
    for (const auto& [state, fragment] : states) {
        DYNAMIC_SECTION("role " << state) {
            fx.set({{"accounts", {{"bg2", {{"role", state}}}}}});
            only_failing(fx.check(), posture::check_global_admin, bg2, fragment);
            fx.set({{"accounts", {{"bg2", {{"role", "permanent"}}}}}});
            CHECK(posture::all_pass(fx.check()));
        }
    }
}

TEST_CASE("posture checker: the group holds exactly the break-glass accounts", "[posture]") {
    posture_fixture fx;
    SECTION("an unexpected member") {
        fx.set({{"group_members", {"bg1", "bg2", "admin"}}});
        only_failing(fx.check(), posture::check_group_membership, group,
                     "unexpected member(s): " + admin);
    }
    SECTION("a missing member, read over several pages") {
        fx.set({{"group_members", {"bg1"}}, {"page_size", 1}});
        const auto rs = fx.check();
        INFO(report(rs));
        CHECK_THAT(find(rs, posture::check_group_membership, group)->problem,
                   Catch::Contains("missing member(s): bg2"));
        // Without bg2 in the group, the MFA policy's group exclusion no longer covers it.
        CHECK(find(rs, posture::check_ca_excluded, ca_mfa)->st == posture::status::fail);
    }
    fx.set({{"reset", true}});
    CHECK(posture::all_pass(fx.check()));
}

TEST_CASE("posture checker: blocking CA policies exclude the accounts", "[posture]") {
    posture_fixture fx;
    SECTION("the exclusion of bg2 removed") {
        fx.set({{"ca", {{ca_block, {{"conditions", {{"users", {{"excludeUsers", {"bg1"}}}}}}}}}}});
        const auto rs = fx.check();
        INFO(report(rs));
        const auto* r = find(rs, posture::check_ca_excluded, ca_block);
        CHECK(r->st == posture::status::fail);
        CHECK_THAT(r->problem, Catch::Contains("does not exclude bg2"));
    }
    SECTION("a report-only policy is not a finding") {
        fx.set({{"ca",
                 {{std::string(lab::posture_ids::ca_report_only),
                   {{"conditions", {{"users", {{"includeUsers", {"bg1"}}}}}}}}}}});
        CHECK(posture::all_pass(fx.check()));
    }
    fx.set({{"reset", true}});
    CHECK(posture::all_pass(fx.check()));
}

TEST_CASE("posture checker: no enabled CA policy includes the accounts", "[posture]") {
    posture_fixture fx;
    fx.set({{"ca", {{ca_block, {{"conditions", {{"users", {{"includeUsers", {"bg1"}}}}}}}}}}});
    only_failing(fx.check(), posture::check_ca_includes, ca_block, "includes bg1");
    fx.set({{"reset", true}});
    CHECK(posture::all_pass(fx.check()));
}

TEST_CASE("posture checker: a missing permission degrades only its checks", "[posture]") {
    posture_fixture fx;
    const std::pair<const char*, std::string_view> cases[] = {
        {"User.Read.All", posture::check_account_enabled},
        {"RoleManagement.Read.Directory", posture::check_global_admin},
        {"GroupMember.Read.All", posture::check_group_membership},
        {"Policy.Read.All", posture::check_ca_excluded}};
    for (const auto& [permission, check] : cases) {
        DYNAMIC_SECTION("without " << permission) {
            fx.set({{"deny", {permission}}});
            const auto rs = fx.check();
            INFO(report(rs));
            std::size_t degraded = 0;
            for (const auto& r : rs) {
                if (r.st == posture::status::cannot_check) {
                    ++degraded;
                    CHECK(r.permission == permission);
                    CHECK(r.problem ==
                          "cannot check: missing permission " + std::string(permission));
                } else {
                    CHECK(r.st == posture::status::ok);
                }
                if (r.check == check) CHECK(r.st == posture::status::cannot_check);
            }
            CHECK(degraded >= 1);
            fx.set({{"deny", json::array()}});
            CHECK(posture::all_pass(fx.check()));
        }
    }
}

TEST_CASE("posture checker: a failure alerts once and its fix is announced", "[posture]") {
    posture_fixture fx;
    fx.set({{"ca", {{ca_block, {{"conditions", {{"users", {{"excludeUsers", {"bg1"}}}}}}}}}}});
    CHECK(fx.run(
        [](io::store& s) { return !alerts_with_rule(s, "posture_ca_not_excluded").empty(); }, 10s));
    // A few more checks of the same state: still one alert. The state survives the restart.
    fx.run([](io::store&) { return false; }, 4s);
    CHECK(fx.health.checks >= 2);
    std::size_t alerts = 0;
    {
        std::string err;
        auto db = io::store::open(fx.cfg.state_directory, err);
        REQUIRE(db);
        alerts = alerts_with_rule(*db, "posture_ca_not_excluded").size();
        CHECK(alerts == 1);
        auto saved = db->load_checkpoint(io::posture_checker::checkpoint_name);
        REQUIRE(saved);
        CHECK(posture::posture_state::from_json(*saved).has_value());
        auto row = alerts_with_rule(*db, "posture_ca_not_excluded").front();
        CHECK_THAT(row.a.summary, Catch::Contains("does not exclude bg2"));
        CHECK_THAT(row.a.detail_json, Catch::Contains("whatChanged"));
    }
    fx.set({{"reset", true}});
    CHECK(fx.run([](io::store& s) { return !alerts_with_rule(s, "posture_fixed").empty(); }, 10s));
    std::string err;
    auto db = io::store::open(fx.cfg.state_directory, err);
    REQUIRE(db);
    CHECK(alerts_with_rule(*db, "posture_ca_not_excluded").size() == 1);
    // The include check of the same policy failed and was fixed too.
    CHECK(alerts_with_rule(*db, "posture_fixed").size() == 2);
}

TEST_CASE("posture checker: a missing permission is reported once as degraded", "[posture]") {
    posture_fixture fx;
    fx.set({{"deny", {"Policy.Read.All"}}});
    CHECK(fx.run([](io::store& s) { return !alerts_with_rule(s, "posture_cannot_check").empty(); },
                 10s));
    fx.run([](io::store&) { return false; }, 4s);
    std::string err;
    auto db = io::store::open(fx.cfg.state_directory, err);
    REQUIRE(db);
    auto rows = alerts_with_rule(*db, "posture_cannot_check");
    REQUIRE(rows.size() == 1);
    CHECK_THAT(rows[0].a.summary, Catch::Contains("Policy.Read.All"));
}

TEST_CASE("lab posture control: bad input is refused and changes nothing", "[posture][lab]") {
    lab::lab_options lo;
    lab::lab_tenant lab(lo);
    const json before = lab.posture();
    for (const json& bad :
         {json{{"accounts", {{"bg1", {{"enabled", "no"}}}}}},
          json{{"accounts", {{"nobody", {{"enabled", false}}}}}}, json{{"group_members", "bg1"}},
          json{{"ca", {{"00000000-0000-4000-8000-000000000000", json::object()}}}},
          json{{"deny", "Policy.Read.All"}}, json{{"group_members", {"bg1"}}, {"colour", "red"}}}) {
        auto r = lab.set_posture(bad);
        INFO(bad.dump());
        CHECK_FALSE(r.ok);
        CHECK(r.body.contains("error"));
        CHECK(lab.posture() == before);
    }
    // Names in CA user lists stand for ids; GET /lab/posture shows the result.
    auto r = lab.set_posture(
        {{"ca", {{ca_block, {{"conditions", {{"users", {{"excludeUsers", {"bg1"}}}}}}}}}}});
    REQUIRE(r.ok);
    bool found = false;
    for (const auto& p : r.body["ca"])
        if (p["id"] == ca_block) {
            found = true;
            CHECK(p["conditions"]["users"]["excludeUsers"] == json::array({bg1}));
        }
    CHECK(found);
}

TEST_CASE("posture checker: an off-host nextLink is refused and the check degrades", "[posture]") {
    posture_fixture fx;
    fx.set({{"page_size", 1}, {"next_link_host", "evil.example"}});
    const auto rs = fx.check();
    INFO(report(rs));
    const auto* r = find(rs, posture::check_ca_excluded, "*");
    REQUIRE(r != nullptr);
    CHECK(r->st == posture::status::cannot_check);
    CHECK_THAT(r->problem, Catch::Contains("another host"));
    CHECK(r->permission.empty());  // not a permission problem: no degraded-check page
    CHECK(find(rs, posture::check_group_membership, group)->st == posture::status::cannot_check);
    CHECK(find(rs, posture::check_account_enabled, bg1)->st == posture::status::ok);
}

TEST_CASE("posture checker: a transient 503 is retried after Retry-After", "[posture]") {
    posture_fixture fx;
    fx.lab->set_faults({{"graph_status", 503}, {"graph_status_count", 1}});
    const auto rs = fx.check();
    INFO(report(rs));
    CHECK(posture::all_pass(rs));
    CHECK(fx.lab->stats()["status_faults"] == 1);
}

TEST_CASE("posture checker: without a PIM licence an active assignment is permanent", "[posture]") {
    posture_fixture fx;
    fx.set({{"pim_licensed", false}});
    auto rs = fx.check();
    INFO(report(rs));
    CHECK(posture::all_pass(rs));  // a licence refusal is not a missing permission
    fx.set({{"accounts", {{"bg1", {{"role", "removed"}}}}}});
    rs = fx.check();
    CHECK(find(rs, posture::check_global_admin, bg1)->st == posture::status::fail);
}
