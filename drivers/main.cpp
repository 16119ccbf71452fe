#include "drivers/Cli.h"

int main(int argc, char** argv) { return drp::runCli(argc, argv); }
