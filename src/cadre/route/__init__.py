"""cadre.route"""
