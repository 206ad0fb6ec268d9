#include "ctl/args.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "dynamo/base/strings.h"

namespace dynamo::ctl {
namespace {

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec> flags = {
      {"addr", true, "", "HOST:PORT  node to talk to (default $DYNAMO_ADDR, else 127.0.0.1:7001)"},
      {"timeout-ms", true, "", "MS  deadline of each call to a node (default 5000)"},
      {"help", false, "-h", "show help"},
  };
  return flags;
}

FlagSpec Quorum(const char* name, const char* what) {
  return {name, true, "", Cat("N  ", what, " for this request (default: the cluster's)")};
}

std::vector<CommandSpec> MakeCommands() {
  const FlagSpec context{"context", true, "",
                         "B64  context of the read this write is based on (from `get`)"};
  const FlagSpec node{"node", true, "", "ADDR  host:port of the node to act on (required)"};
  const FlagSpec dir{"dir", true, "", "DIR  folder of the dev cluster (default .dev-cluster)"};
  const FlagSpec wait_s{"wait-s", true, "", "S  how long to wait at most (default 60)"};
  return {
      {"get",
       "KEY [--n N] [--r R]",
       "read every value (sibling) of a key and its context",
       "Prints \"not found\", the value, or \"K siblings:\" and one value per line; then\n"
       "\"context: <base64>\" to pass to put or delete. Values with control characters\n"
       "are printed C-escaped in double quotes.",
       {Quorum("n", "replicas (N)"), Quorum("r", "replies to wait for (R)")},
       1,
       1},
      {"put",
       "KEY VALUE [--context B64] [--n N] [--w W]",
       "write a value; prints the new context",
       "Without --context the value becomes a sibling of whatever the key holds; with the\n"
       "context of a read it replaces every value that read returned. VALUE \"-\" reads\n"
       "the value from standard input.",
       {context, Quorum("n", "replicas (N)"), Quorum("w", "acknowledgements to wait for (W)")},
       2,
       2},
      {"delete",
       "KEY [--context B64] [--n N] [--w W]",
       "delete a key; prints the new context",
       "Without --context it reads the key first and deletes every value that read\n"
       "returns (a delete with no context would only add a tombstone beside them, and\n"
       "reads would still return them); with the context of a read it deletes what\n"
       "that read returned, and a value written since stays.",
       {context, Quorum("n", "replicas (N)"), Quorum("w", "acknowledgements to wait for (W)")},
       1,
       1},
      {"cluster status",
       "",
       "every member's state, ownership, keys, hints and handoff",
       "Asks --addr for the members, then each member for its own status.",
       {},
       0,
       0},
      {"ring",
       "",
       "partitioning strategy, partitions, N and each node's share of the ring",
       "PRIMARY is the share of keys a node coordinates as the first of the preference\n"
       "list; REPLICATED the share it stores (the column sums to N).",
       {},
       0,
       0},
      {"join",
       "--node ADDR [--seed ADDR] [--zone Z] [--wait] [--wait-s S]",
       "ask a node to join the ring (the paper's explicit join)",
       "--zone sets the node's failure domain for zone-aware placement; the node keeps it\n"
       "across restarts unless it is started with a --zone of its own. A node already in\n"
       "the ring may be given another zone: its ranges move by handoff, as for `vnodes`.",
       {node,
        {"seed", true, "", "ADDR  a cluster member for the node to gossip with first"},
        {"zone", true, "", "Z  the node's zone (default: leave it as it is)"},
        {"wait", false, "", "wait until the node is NORMAL"},
        wait_s},
       0,
       0},
      {"leave",
       "--node ADDR [--wait] [--wait-s S]",
       "ask a node to hand its ranges off and leave the ring",
       "With --wait, shows handoff progress until the node reports LEFT (safe to stop).",
       {node, {"wait", false, "", "wait until the node is LEFT"}, wait_s},
       0,
       0},
      {"remove",
       "NODE_ID [--wait] [--wait-s S]",
       "remove a node gone for good from the cluster, through --addr",
       "For a node that will not come back (its machine or disk is lost): it leaves the\n"
       "ring without handing anything off, the other replicas of its ranges copy their\n"
       "data to the new owners (anti-entropy), its hints go to them, and the tombstone\n"
       "reaps it held go on. Refused while --addr can reach it: a live node leaves with\n"
       "`leave`. Its storage may never start again (it would bring deleted values back);\n"
       "wiped, the node may join as a new one. With --wait, waits until --addr sees it LEFT.",
       {{"wait", false, "", "wait until the node is out of the ring (LEFT)"}, wait_s},
       1,
       1},
      {"vnodes",
       "--node ADDR N",
       "set the number of virtual nodes (weight) a node asks for",
       "",
       {node},
       1,
       1},
      {"dev up",
       "[-n N] [--dir DIR] [--base-port P] [--http-base-port P] [--node-binary PATH]\n"
       "       [--storage rocksdb|memory] [--replicas N --read-quorum R --write-quorum W]",
       "start a local cluster of dynamo-node processes on 127.0.0.1",
       "Node I listens on 127.0.0.1:(base-port + I - 1) for gRPC and (http-base-port + I - 1)\n"
       "for /metrics; its data is in DIR/nI/, its log in DIR/nI.log, its pid in DIR/nI.pid.\n"
       "Node 1 founds the ring and the others join it. Waits until every node is NORMAL\n"
       "and ready. The processes keep running after dynamoctl exits: `dev down` stops them.\n"
       "The node binary defaults to dynamo-node next to dynamoctl (or in ../node/ of a\n"
       "build tree), then the one on PATH.",
       {{"nodes", true, "-n", "N  number of nodes (default 3)"},
        dir,
        {"base-port", true, "", "P  gRPC port of node 1 (default 7001)"},
        {"http-base-port", true, "", "P  HTTP port of node 1 (default 9101)"},
        {"node-binary", true, "", "PATH  the dynamo-node to run"},
        {"storage", true, "", "rocksdb|memory  storage engine (default rocksdb)"},
        {"replicas", true, "", "N  copies of each key (default 3)"},
        {"read-quorum", true, "", "R  default read quorum (default 2)"},
        {"write-quorum", true, "", "W  default write quorum (default 2)"},
        wait_s},
       0,
       0},
      {"dev down",
       "[--dir DIR] [--wipe] [--wait-s S]",
       "stop the local cluster",
       "Sends SIGTERM to every node, SIGKILL to those still running after --wait-s\n"
       "(default 15), and removes the pid files; --wipe also removes data and logs.",
       {dir,
        {"wipe", false, "", "also remove the nodes' data and logs"},
        {"wait-s", true, "", "S  grace period before SIGKILL (default 15)"}},
       0,
       0},
      {"dev status", "[--dir DIR]", "processes and states of the local cluster", "", {dir}, 0, 0},
  };
}

// Command names made of two words start with one of these.
bool IsGroup(const std::string& word) { return word == "cluster" || word == "dev"; }

const FlagSpec* FindFlag(const std::vector<const FlagSpec*>& specs, const std::string& token) {
  for (const FlagSpec* f : specs) {
    if (token == "--" + f->name || (!f->alias.empty() && token == f->alias)) return f;
  }
  return nullptr;
}

// Flags as two aligned columns: spelling and metavariable, then what it does.
// A help text is "METAVAR  what it does", or just "what it does" for a switch.
std::string FlagLines(const std::vector<FlagSpec>& flags, bool long_only) {
  std::vector<std::pair<std::string, std::string>> lines;
  size_t width = 0;
  for (const FlagSpec& f : flags) {
    const size_t gap = f.help.find("  ");
    std::string metavar = gap == std::string::npos ? "" : f.help.substr(0, gap);
    std::string what = gap == std::string::npos ? f.help : f.help.substr(gap);
    while (!metavar.empty() && metavar.front() == ' ') metavar.erase(0, 1);
    while (!what.empty() && what.front() == ' ') what.erase(0, 1);
    std::string left = long_only || f.alias.empty() ? "--" + f.name : f.alias + ", --" + f.name;
    if (long_only && !f.alias.empty()) left += ", " + f.alias;
    if (!metavar.empty()) left += " " + metavar;
    width = std::max(width, left.size());
    lines.emplace_back(std::move(left), std::move(what));
  }
  std::string out;
  for (const auto& [left, what] : lines) {
    out += Cat("  ", left, std::string(width - left.size() + 2, ' '), what, "\n");
  }
  return out;
}

}  // namespace

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> commands = MakeCommands();
  return commands;
}

const CommandSpec* FindCommand(const std::string& name) {
  for (const CommandSpec& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

std::string Invocation::Flag(const std::string& flag, const std::string& fallback) const {
  auto it = flags.find(flag);
  return it == flags.end() ? fallback : it->second;
}

absl::StatusOr<Invocation> ParseCommandLine(const std::vector<std::string>& args,
                                            const char* env_addr) {
  Invocation inv;
  if (env_addr != nullptr && env_addr[0] != '\0') inv.addr = env_addr;

  // First pass: find the command's words, skipping global flags (and their
  // values) before it. Anything else that looks like a flag before the
  // command is an error: its spec is not known yet.
  std::vector<const FlagSpec*> globals;
  for (const FlagSpec& f : GlobalFlags()) globals.push_back(&f);
  std::vector<size_t> command_words;
  std::optional<size_t> help_word;  // `dynamoctl help [COMMAND]`
  for (size_t i = 0; i < args.size() && command_words.empty(); ++i) {
    const std::string& a = args[i];
    if (a.size() > 1 && a[0] == '-' && a != "--") {
      const std::string name = a.substr(0, a.find('='));
      const FlagSpec* f = FindFlag(globals, name);
      if (f == nullptr) {
        return absl::InvalidArgumentError(
            Cat("unknown flag ", name, " before the command (a command's flags go after it)"));
      }
      if (f->takes_value && name == a) ++i;  // its value is the next argument
      continue;
    }
    if (a == "help" && !help_word) {
      help_word = i;
      continue;
    }
    command_words.push_back(i);
    if (IsGroup(a) && i + 1 < args.size() && args[i + 1].rfind("-", 0) != 0) {
      command_words.push_back(i + 1);
    }
  }
  std::string name;
  for (size_t w : command_words) name += (name.empty() ? "" : " ") + args[w];
  if (!name.empty()) {
    inv.command = FindCommand(name);
    if (inv.command == nullptr) {
      const std::string first = args[command_words[0]];
      if (IsGroup(first)) {
        std::string subs;
        for (const CommandSpec& c : Commands()) {
          if (c.name.rfind(first + " ", 0) == 0) subs += Cat(subs.empty() ? "" : ", ", c.name);
        }
        return absl::InvalidArgumentError(
            Cat("unknown command '", name, "': did you mean one of ", subs, "?"));
      }
      return absl::InvalidArgumentError(Cat("unknown command '", name, "' (see dynamoctl --help)"));
    }
  }
  inv.help = help_word.has_value();

  // Second pass: every argument but the command's words.
  std::vector<const FlagSpec*> specs = globals;
  if (inv.command != nullptr) {
    for (const FlagSpec& f : inv.command->flags) specs.push_back(&f);
  }
  bool flags_ended = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (std::find(command_words.begin(), command_words.end(), i) != command_words.end()) continue;
    const std::string& a = args[i];
    if (help_word == i) continue;
    if (!flags_ended && a == "--") {
      flags_ended = true;
      continue;
    }
    if (flags_ended || a.size() < 2 || a[0] != '-') {
      inv.positional.push_back(a);
      continue;
    }
    const size_t eq = a.find('=');
    const std::string token = a.substr(0, eq);
    const FlagSpec* f = FindFlag(specs, token);
    if (f == nullptr) {
      return absl::InvalidArgumentError(
          Cat("unknown flag ", token,
              inv.command ? Cat(" for '", inv.command->name, "'") : std::string(),
              " (see --help; a value starting with '-' goes after --)"));
    }
    std::string value = "true";
    if (f->takes_value) {
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(Cat("flag ", token, " needs a value"));
      }
    } else if (eq != std::string::npos) {
      return absl::InvalidArgumentError(Cat("flag ", token, " takes no value"));
    }
    if (f->name == "help") {
      inv.help = true;
    } else if (f->name == "addr") {
      if (value.empty()) return absl::InvalidArgumentError("--addr needs HOST:PORT");
      inv.addr = value;
    } else if (f->name == "timeout-ms") {
      absl::StatusOr<uint64_t> ms = ParseUint(value, "--timeout-ms", 1, 3'600'000);
      if (!ms.ok()) return ms.status();
      inv.timeout_ms = static_cast<int64_t>(*ms);
    } else if (inv.flags.contains(f->name)) {
      return absl::InvalidArgumentError(Cat("flag --", f->name, " given twice"));
    } else {
      inv.flags[f->name] = value;
    }
  }
  if (inv.help) return inv;
  if (inv.command == nullptr) {
    return absl::InvalidArgumentError("no command given (see dynamoctl --help)");
  }
  const CommandSpec& c = *inv.command;
  if (inv.positional.size() < c.positional_min || inv.positional.size() > c.positional_max) {
    return absl::InvalidArgumentError(
        Cat(inv.positional.size() < c.positional_min ? "missing arguments" : "too many arguments",
            " for '", c.name, "': usage: dynamoctl ", c.name, " ", c.synopsis));
  }
  return inv;
}

absl::StatusOr<uint64_t> ParseUint(const std::string& text, const std::string& what, uint64_t min,
                                   uint64_t max) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end) {
    return absl::InvalidArgumentError(Cat(what, " must be a whole number, not '", text, "'"));
  }
  if (v < min || v > max) {
    return absl::InvalidArgumentError(Cat(what, " must be in [", min, ", ", max, "], not ", v));
  }
  return v;
}

absl::StatusOr<uint64_t> FlagUint(const Invocation& inv, const std::string& flag, uint64_t fallback,
                                  uint64_t min, uint64_t max) {
  if (!inv.Has(flag)) return fallback;
  return ParseUint(inv.Flag(flag), "--" + flag, min, max);
}

std::string TopLevelUsage() {
  std::string out =
      "usage: dynamoctl [--addr HOST:PORT] [--timeout-ms MS] COMMAND [ARGS] [FLAGS]\n"
      "A client and admin tool for a dynamo cluster.\n\ncommands:\n";
  size_t width = 0;
  for (const CommandSpec& c : Commands()) width = std::max(width, c.name.size());
  for (const CommandSpec& c : Commands()) {
    out += Cat("  ", c.name, std::string(width - c.name.size() + 2, ' '), c.summary, "\n");
  }
  out += "\nglobal flags:\n";
  out += FlagLines(GlobalFlags(), true);
  out +=
      "\n`dynamoctl COMMAND --help` describes a command. Exit status: 0 ok, 1 error (the gRPC\n"
      "code and message are printed), 2 usage error.\n";
  return out;
}

std::string CommandUsage(const CommandSpec& c) {
  std::string out = Cat("usage: dynamoctl ", c.name, c.synopsis.empty() ? "" : " ", c.synopsis,
                        "\n", c.summary, "\n");
  if (!c.details.empty()) out += Cat("\n", c.details, "\n");
  if (!c.flags.empty()) {
    out += "\nflags:\n" + FlagLines(c.flags, false);
  }
  out += "\nglobal flags: --addr HOST:PORT, --timeout-ms MS (see dynamoctl --help)\n";
  return out;
}

}  // namespace dynamo::ctl
