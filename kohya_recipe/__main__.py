from kohya_recipe.cli import main

main()
