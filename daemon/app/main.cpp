// glasswatch: break-glass tripwire for Microsoft Entra ID. CLI entry point.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "app/commands.hpp"

namespace {

constexpr const char* usage_text =
    R"(glasswatch — pages out of band whenever an Entra ID break-glass account is touched

usage: glasswatch <command> [options]

commands:
  run --config FILE            run the daemon (systemd Type=notify; SIGTERM drains and exits 0)
  check-config FILE            validate FILE, print what is watched and every warning that
                               matters to a SOC (fewer than two accounts, a sink hosted by
                               Microsoft, a secret file readable by others)
  replay [--config FILE] [--send] [--format graph-signins|graph-audits|diagnostic|auto] FILE|-
                               feed Graph pages, diagnostic-settings bodies or NDJSON records
                               through the matcher and print the alerts as JSON lines;
                               nothing is sent unless --send (then alerts go through the store
                               and the configured sinks, exactly as the daemon would)
  test-alert [--config FILE] [--sink NAME] [--wait SECONDS]
                               send a clearly labelled test alert through every configured
                               sink (or one) and report, per sink, accepted/confirmed and how
                               long it took; exit 1 if a sink failed
  evidence verify [--config FILE]
                               check the hash chain over the stored evidence; exit 1 and name
                               the first broken row when a row was altered or removed
  evidence export [--config FILE] [--since ISO-8601] [--account ID]
                               the raw matched records with their alerts and delivery history,
                               one JSON object per line (for the post-mortem or an auditor)
  drill start --account ID|UPN [--for 30m] [--note TEXT] [--config FILE]
                               declare a break-glass drill: alerts for that account in the
                               window are still sent, labelled DRILL (run it as the service
                               user, or while the daemon runs)
  drill report [--since ISO-8601] [--json] [--config FILE]
                               per drill: when the sign-in happened, when glasswatch saw it,
                               when each sink accepted and confirmed it (auditor evidence)
  outbox list [--sink S] [--state pending|accepted|confirmed|failed] [--limit N] [--json]
                               the deliveries per sink and state, newest first, with the open
                               broken-sink episodes (read-only; works next to the daemon)
  outbox retry --sink S | --alert ID [--config FILE]
                               re-queue the rows a sink refused (after fixing the sink) and
                               release a sink held by a 410, refused credentials or a failing
                               certificate; logged and chained as evidence
  status [--config FILE]       summary of the running daemon from its admin endpoint
                               (sources, sinks, outbox, alerts, firing tripwires); exit 1
                               when not ready or not running
  posture [--config FILE] [--json] [--timeout SECONDS]
                               run the break-glass posture checks once over Graph (accounts
                               exist, enabled, cloud-only, permanent Global Administrator;
                               group membership; Conditional Access exclusions) and print a
                               report (human, or one JSON object); exit 0 only when every
                               check passes, 1 when one fails or cannot be checked (e.g.
                               "cannot check: missing permission Policy.Read.All")
  version                      print the version
  help                         this text

options:
  --config FILE                configuration (default /etc/glasswatch/glasswatch.toml)

exit codes:
  0  success (check-config: valid, possibly with warnings; replay: processed; posture: all pass)
  1  runtime failure (I/O error, a sink refused a --send delivery, interrupted;
     posture: a check failed or could not be run)
  2  usage error (unknown command or option)
  3  configuration invalid (every problem is printed as FILE:LINE: KEY: MESSAGE)
  4  state store unusable (corrupt, newer schema, unwritable) — never silently reset

Configuration reference: /usr/share/doc/glasswatch/README.md and the commented
/etc/glasswatch/glasswatch.example.toml.
)";

}  // namespace

int main(int argc, char** argv) {
    // Secrets live in this process's memory (client secret, routing keys, tokens): no core
    // dumps, whatever the environment's limits, and no ptrace attach by other processes of the
    // same user.
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // Everything glasswatch writes (the state database with raw sign-ins, IPs and UPNs, the
    // file sink) is for its own user only, whatever umask it was started with.
    ::umask(0077);
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
        std::fputs(usage_text, args.empty() ? stderr : stdout);
        return args.empty() ? glasswatch::app::exit_usage : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    for (const auto& a : args) {
        if (a == "--help" || a == "-h") {
            std::fputs(usage_text, stdout);
            return 0;
        }
    }
    if (cmd == "version" || cmd == "--version") {
        std::printf("glasswatch %s\n", GLASSWATCH_VERSION);
        return 0;
    }
    if (cmd == "check-config") return glasswatch::app::cmd_check_config(args);
    if (cmd == "replay") return glasswatch::app::cmd_replay(args);
    if (cmd == "run") return glasswatch::app::cmd_run(args);
    if (cmd == "test-alert") return glasswatch::app::cmd_test_alert(args);
    if (cmd == "evidence") return glasswatch::app::cmd_evidence(args);
    if (cmd == "drill") return glasswatch::app::cmd_drill(args);
    if (cmd == "status") return glasswatch::app::cmd_status(args);
    if (cmd == "posture") return glasswatch::app::cmd_posture(args);
    if (cmd == "outbox") return glasswatch::app::cmd_outbox(args);
    std::fprintf(stderr, "glasswatch: unknown command '%s' (try: glasswatch help)\n", cmd.c_str());
    return glasswatch::app::exit_usage;
}
