; expect: syntax_error
    MVN $7E
