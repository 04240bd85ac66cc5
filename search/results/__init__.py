"""What a study found: status, the report (its data, figures and page), export and evaluate."""
