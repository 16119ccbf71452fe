// The `drp` command line: global options, then one subcommand with its own options.
//   drp [--log-level L] [--config FILE] <command> [command options]
// Subcommands register themselves in Commands.cpp; each gets a Boost.Program_options description.
#pragma once

#include <boost/program_options.hpp>
#include <functional>
#include <string>
#include <vector>

#include "core/Communicator.h"

namespace drp {

struct Command {
    std::string name;
    std::string summary;
    /// Adds the command's options to `desc`.
    std::function<void(boost::program_options::options_description& desc)> addOptions;
    /// Adds positional arguments (may be empty).
    std::function<void(boost::program_options::positional_options_description& pos)> addPositional;
    /// Runs the command; returns the process exit code.
    std::function<int(const boost::program_options::variables_map& vm, const Communicator& comm)> run;
};

/// Every registered subcommand, in the order `drp --help` lists them.
std::vector<Command>& commandRegistry();
/// Registers a command (call at static-initialisation time through DRP_REGISTER_COMMAND or at start-up).
void registerCommand(Command command);
/// The whole CLI: parses, sets up logging and MPI, dispatches; returns the exit code.
int runCli(int argc, char** argv);

}  // namespace drp
