"""cadre.demo"""
