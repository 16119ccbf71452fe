#include "drivers/Cli.h"

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <optional>

#include "core/Error.h"
#include "core/Log.h"

namespace po = boost::program_options;

namespace drp {

void registerBuiltinCommands();  // drivers/Commands.cpp

std::vector<Command>& commandRegistry() {
    static std::vector<Command> commands;
    return commands;
}

void registerCommand(Command command) {
    for (const auto& c : commandRegistry())
        if (c.name == command.name) throw LogicError("command '" + command.name + "' registered twice");
    commandRegistry().push_back(std::move(command));
}

namespace {

void printUsage(std::ostream& os, const po::options_description& global) {
    os << "drp " << DRP_VERSION << " - distributed data-release processing for optical sky surveys\n\n"
       << "Usage: drp [global options] <command> [command options]\n"
       << "       mpirun -np N drp [global options] <command> [command options]\n\n"
       << global << "\nCommands:\n";
    for (const auto& c : commandRegistry()) {
        os << "  " << c.name;
        for (std::size_t i = c.name.size(); i < 20; ++i) os << ' ';
        os << c.summary << "\n";
    }
    os << "\nRun 'drp <command> --help' for a command's options.\n";
}

const Command* findCommand(const std::string& name) {
    for (const auto& c : commandRegistry())
        if (c.name == name) return &c;
    return nullptr;
}

}  // namespace

int runCli(int argc, char** argv) {
    if (commandRegistry().empty()) registerBuiltinCommands();

    po::options_description global("Global options");
    global.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("log-level", po::value<std::string>()->default_value("info"),
         "trace, debug, verbose, info, warn, error, fatal or off")
        ("config", po::value<std::vector<std::string>>()->composing(),
         "config file(s) of 'option = value' lines for the command (command line wins); may repeat");

    // Split argv at the first token that names a command.
    int cmdIndex = -1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (!a.empty() && a[0] != '-' && findCommand(a)) {
            cmdIndex = i;
            break;
        }
        if ((a == "--log-level" || a == "--config") && i + 1 < argc) ++i;  // skip the value
    }

    try {
        po::variables_map gvm;
        int globalArgc = cmdIndex < 0 ? argc : cmdIndex;
        po::store(po::command_line_parser(globalArgc, argv).options(global).run(), gvm);
        po::notify(gvm);
        Log::setLevel(Log::parseLevel(gvm["log-level"].as<std::string>()));

        if (gvm.count("version")) {
            std::cout << "drp " << DRP_VERSION << "\n";
            return 0;
        }
        if (cmdIndex < 0) {
            printUsage(gvm.count("help") ? std::cout : std::cerr, global);
            if (gvm.count("help")) return 0;
            if (globalArgc > 1) std::cerr << "\nerror: no known command given\n";
            return 2;
        }

        const Command& cmd = *findCommand(argv[cmdIndex]);
        po::options_description desc("Options of 'drp " + cmd.name + "'");
        desc.add_options()("help,h", "print this command's help and exit");
        if (cmd.addOptions) cmd.addOptions(desc);
        po::positional_options_description pos;
        if (cmd.addPositional) cmd.addPositional(pos);

        po::variables_map vm;
        po::store(po::command_line_parser(argc - cmdIndex, argv + cmdIndex).options(desc).positional(pos).run(), vm);
        if (vm.count("help")) {
            std::cout << "drp " << cmd.name << ": " << cmd.summary << "\n\n" << desc << "\n";
            return 0;
        }
        if (gvm.count("config")) {
            for (const auto& file : gvm["config"].as<std::vector<std::string>>()) {
                std::ifstream in(file);
                if (!in) throw ConfigError("cannot open config file", file);
                po::store(po::parse_config_file(in, desc, false), vm);
            }
        }
        po::notify(vm);

        // MPI only under a launcher: a serial command (measure-image on one file) starts in milliseconds.
        std::optional<MpiSession> mpi;
        if (MpiSession::launchedByMpi()) mpi.emplace(&argc, &argv);
        Communicator comm = Communicator::world();
        Log::setRank(comm.rank());
        return cmd.run(vm, comm);
    } catch (const po::error& e) {
        std::cerr << "drp: " << e.what() << "\n(see 'drp --help')\n";
        return 2;
    } catch (const Error& e) {
        DRP_LOG_ERROR("drp", e.kind() << ": " << e.what());
        return 1;
    } catch (const std::exception& e) {
        DRP_LOG_ERROR("drp", "unexpected error: " << e.what());
        return 1;
    }
}

}  // namespace drp
