require /* c */ [ "fileinto" /* c */ ] ; # c
if /* c */ header /* c */ :contains /* c */ "from" /* c */ "coyote" # c
{ /* c */ fileinto /* c */ "x" /* c */ ; }
