"""Organisation: street → community → compound → building; grids, stations, firms, contracts, branches."""
