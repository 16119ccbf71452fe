// Registration of the built-in subcommands. Each command's implementation lives in its own file.
#include "drivers/Cli.h"

namespace drp {

void registerExampleCommand();
void registerRepositoryCommands();
void registerSimCommand();

void registerBuiltinCommands() {
    registerExampleCommand();
    registerRepositoryCommands();
    registerSimCommand();
}

}  // namespace drp
