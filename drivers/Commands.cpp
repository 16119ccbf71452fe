// Registration of the built-in subcommands. Each command's implementation lives in its own file.
#include "core/MoffatPsf.h"
#include "core/PsfexPsf.h"
#include "stages/coadd/CoaddPsf.h"
#include "drivers/Cli.h"

namespace drp {

void registerExampleCommand();
void registerRepositoryCommands();
void registerSimCommand();
void registerSingleVisitCommands();
void registerCampaignCommand();
void registerImageCommands();
void registerAssessCommand();
void registerCoaddImagesCommand();

void registerBuiltinCommands() {
    // PSF types any command may read from a file.
    registerMoffatPsf();
    registerPsfexPsf();
    registerCoaddPsf();
    registerExampleCommand();
    registerRepositoryCommands();
    registerSimCommand();
    registerSingleVisitCommands();
    registerCampaignCommand();
    registerImageCommands();
    registerAssessCommand();
    registerCoaddImagesCommand();
}

}  // namespace drp
