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
  evidence init [--config FILE]
                               start the sealed evidence chain and print its verification
                               key once (keep it off this machine); refused when it exists
  evidence verify [--config FILE] [--key-file FILE] [--anchor SEQ:HASH]... [--anchors FILE]
  evidence verify --bundle FILE --key-file FILE [--anchors FILE]
                               check the sealed chain (seals, numbering, epochs, anchors that
                               left the machine) and the alerts and outbox against it; exit 1
                               naming the first bad entry or the missing range
  evidence export [--config FILE] [--since DATE|ISO-8601] [--account ID|UPN|LABEL]
  evidence export [--config FILE] --bundle FILE
                               the sealed records with their alerts and delivery history, one
                               JSON object per line; or the whole chain as a bundle that
                               `evidence verify --bundle` checks on another machine
  drill start --account ID|UPN|LABEL [--for 30m] [--note TEXT] [--config FILE]
                               declare a break-glass drill: alerts for that account in the
                               window are still sent, labelled DRILL (run it as the service
                               user, or while the daemon runs)
  drill report [--since DATE|ISO-8601] [--json] [--config FILE]
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
  help [COMMAND]               this text, or one command's (also: glasswatch COMMAND --help)

options:
  --config FILE                configuration (default /etc/glasswatch/glasswatch.toml)

exit codes:
  0  success (check-config: valid, possibly with warnings; replay: processed; posture: all pass)
  1  runtime failure (I/O error, a sink refused a --send delivery, interrupted;
     posture: a check failed or could not be run)
  2  usage error (unknown command or option, a flag without or with a bad value,
     an --account that is not watched)
  3  configuration invalid (every problem is printed as FILE:LINE: KEY: MESSAGE)
  4  state store unusable (corrupt, newer schema, unwritable) — never silently reset

Configuration reference: /usr/share/doc/glasswatch/README.md and the commented
/etc/glasswatch/glasswatch.toml.example.
)";

// `glasswatch <command> --help` and `glasswatch help <command>`: that command only.
struct command_help {
    const char* name;
    const char* text;
};

constexpr command_help command_helps[] = {
    {"run", R"(usage: glasswatch run [--config FILE]

Run the daemon in the foreground (systemd Type=notify). Reads every source, pages every
break-glass touch, watches itself.

  --config FILE   configuration (default /etc/glasswatch/glasswatch.toml)

Signals: SIGTERM/SIGINT drain (stop intake, finish in-flight deliveries for at most 10 s) and
exit 0. SIGHUP (systemctl reload) re-reads and validates FILE and applies it in place; a file it
refuses leaves the running configuration, is logged and raises a config_reload_failed warning.
Exit: 3 configuration invalid, 4 state store unusable or held by another instance (its PID is
named).
)"},
    {"check-config", R"(usage: glasswatch check-config [FILE | --config FILE]

Validate FILE exactly as `run` would (every secret file and env: variable is read), print what
is watched, where alerts go (URLs as scheme and host only), the heartbeat and tripwire
settings, and every warning that matters to a SOC.

Exit: 0 valid (perhaps with warnings), 3 invalid (each problem as FILE:LINE: KEY: MESSAGE).
A /run/credentials/... secret outside the unit is a note: it exists only while the unit runs.
)"},
    {"replay", R"(usage: glasswatch replay [--config FILE] [--send] [--format F] FILE|-

Feed exported logs through the matcher and print the alerts as JSON lines. The input is read
as a stream (constant memory): Graph pages, diagnostic-settings bodies ({"records": [...]}),
or NDJSON records, one per line.

  --config FILE   configuration (default /etc/glasswatch/glasswatch.toml)
  --format F      auto (default), graph-signins, graph-audits or diagnostic
  --send          also deliver the alerts through the store and the configured sinks
  FILE | -        the input file, or - for stdin

Exit: 0 processed, 1 a --send delivery failed, 3 configuration invalid.
)"},
    {"test-alert", R"(usage: glasswatch test-alert [--config FILE] [--sink NAME] [--wait SECONDS]

Send a clearly labelled test alert through every configured sink (or one) and report, per
sink, accepted/confirmed and how long it took.

  --config FILE     configuration (default /etc/glasswatch/glasswatch.toml)
  --sink NAME       only this sink
  --wait SECONDS    how long to wait for acceptance and confirmation, 1 to 3600 (default 60)

Exit: 0 every sink accepted, 1 a sink failed, 2 a bad flag, 3 configuration invalid.
)"},
    {"evidence", R"(usage: glasswatch evidence init [--config FILE]
       glasswatch evidence verify [--config FILE] [--key-file FILE | --key gwv1-...]
                                  [--anchor SEQ:HASH]... [--anchors FILE]
       glasswatch evidence verify --bundle FILE --key-file FILE [--anchors FILE]
       glasswatch evidence export [--config FILE] [--since WHEN] [--account WHO]
       glasswatch evidence export [--config FILE] --bundle FILE

init     start the chain before the first run and print the verification key once (the
         daemon otherwise starts it and writes the key to <state>/evidence-verification.key
         for you to move off the machine); refused when the chain exists
verify   check the chain: each entry's hash and its link to the one before, the numbering,
         the epochs and, with the verification key, every seal; the key file's epoch (entries
         cut from the end); each anchor (a head that left the machine in a page or heartbeat:
         rollback to an older copy); the alerts and outbox tables against the entries that
         sealed them. Exit 1 names the first bad entry or the missing range
export   the sealed records with their alerts and what each sink did, one JSON object per line
         (for a post-mortem or an auditor); with --bundle, the whole chain for offline checks

  --config FILE     configuration (default /etc/glasswatch/glasswatch.toml)
  --key-file FILE   the verification key (a file holding the gwv1-... line)
  --key gwv1-...    the same on the command line (visible to other users in ps: prefer a file)
  --anchor SEQ:HASH a head recorded off the machine (repeatable)
  --anchors FILE    every SEQ:HASH found in FILE (a receiver's history, a mail archive)
  --bundle FILE     export: write the bundle; verify: check it (no state or config needed)
  --since WHEN      a date YYYY-MM-DD (UTC) or an ISO-8601 time with zone
  --account WHO     a watched account's object id, UPN or label (exit 2 when not watched)
)"},
    {"drill",
     R"(usage: glasswatch drill start --account WHO [--for DURATION] [--note TEXT] [--config FILE]
       glasswatch drill report [--since WHEN] [--json] [--config FILE]

start    declare a break-glass drill: alerts for that account in the window are still sent,
         labelled DRILL (run it as the service user, or while the daemon runs)
report   per drill: when the sign-in happened, when glasswatch saw it, when each sink accepted
         and confirmed it (auditor evidence)

  --account WHO       a watched account's object id, UPN or label (exit 2 when not watched)
  --for DURATION      drill window, e.g. 30m (default), at most 24h
  --note TEXT         free text kept with the drill
  --since WHEN        a date YYYY-MM-DD (UTC) or an ISO-8601 time (default: 400 days ago)
  --json              one JSON object per drill
  --config FILE       configuration (default /etc/glasswatch/glasswatch.toml)
)"},
    {"outbox",
     R"(usage: glasswatch outbox list [--sink S] [--state STATE] [--limit N] [--json] [--config FILE]
       glasswatch outbox retry (--sink S | --alert ID) [--config FILE]

list     deliveries per sink and state, newest first, with the open broken-sink episodes
         (read-only; works next to the running daemon)
retry    re-queue the rows a sink refused (after fixing the sink) and release a sink held by a
         410, refused credentials or a failing certificate; logged and chained as evidence

  --sink S        a configured sink's name
  --state STATE   pending, accepted, confirmed or failed
  --limit N       at most N rows, 1 to 100000 (default 100)
  --alert ID      one alert's rows
  --json          one JSON object per row
  --config FILE   configuration (default /etc/glasswatch/glasswatch.toml)
)"},
    {"status", R"(usage: glasswatch status [--config FILE]

Summary of the running daemon from its admin endpoint: sources, sinks, outbox, alerts,
firing tripwires. Exit 1 when it is not ready or not running.
)"},
    {"posture", R"(usage: glasswatch posture [--config FILE] [--json] [--timeout SECONDS]

Run the break-glass posture checks once over Graph (accounts exist, enabled, cloud-only,
permanent Global Administrator; group membership; Conditional Access exclusions) and print a
report. Exit 0 only when every check passes, 1 when one fails or cannot be checked.

  --json              one JSON object
  --timeout SECONDS   give up after this long, 1 to 3600 (default 120)
  --config FILE       configuration (default /etc/glasswatch/glasswatch.toml)
)"},
    {"version", "usage: glasswatch version\n\nPrint the version.\n"},
    {"help", "usage: glasswatch help [COMMAND]\n\nThe overview, or one command's help.\n"},
};

const char* help_for(const std::string& cmd) {
    for (const auto& h : command_helps)
        if (cmd == h.name) return h.text;
    return nullptr;
}

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
        if (args.size() >= 2 && args[0] == "help") {
            if (const char* h = help_for(args[1])) {
                std::fputs(h, stdout);
                return 0;
            }
            std::fprintf(stderr, "glasswatch: no command '%s' (try: glasswatch help)\n",
                         args[1].c_str());
            return glasswatch::app::exit_usage;
        }
        std::fputs(usage_text, args.empty() ? stderr : stdout);
        return args.empty() ? glasswatch::app::exit_usage : 0;
    }
    const std::string cmd = args[0];
    args.erase(args.begin());
    for (const auto& a : args) {
        if (a == "--help" || a == "-h") {
            const char* h = help_for(cmd);
            std::fputs(h != nullptr ? h : usage_text, stdout);
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
