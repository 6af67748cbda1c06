// Placeholder entry point so the skeleton builds; the real command line replaces this file.
return 0;
